"""Provides the parsing of database URLs, without importing any database driver.

Kept apart so that the command line can check ``--database`` on a client-only install.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def is_postgres_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database rather than a SQLite file."""
    return value.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
