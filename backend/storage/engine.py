"""Provides the choice of storage engine: SQLite in the data dir, or a PostgreSQL URL.

Repositories are written once per engine; each domain's ``make_repository`` picks the one that
matches the :data:`StorageEngine` it is given, so nothing above the repositories knows which
engine serves it.
"""

from __future__ import annotations

from backend.config import ServerConfig
from backend.storage.database import Database
from backend.storage.postgres import PostgresDatabase
from backend.storage.urls import is_postgres_url, redact

#: An open database of either engine.
StorageEngine = Database | PostgresDatabase


class UnknownDatabaseError(ValueError):
    """The database setting is neither empty nor a ``postgresql://`` URL."""


def engine_for(config: ServerConfig) -> StorageEngine:
    """The (not yet opened) database ``config`` names.

    Raises:
        UnknownDatabaseError: ``config.database`` is not a PostgreSQL URL.
    """
    if not config.database:
        return Database(config.db_path)
    if not is_postgres_url(config.database):
        raise UnknownDatabaseError(
            f"--database must be a postgresql:// URL, not {redact(config.database)!r} "
            "(leave it out for the SQLite file in the data dir)"
        )
    return PostgresDatabase(config.database)


def describe(db: StorageEngine) -> str:
    """Where ``db`` keeps the shop, safe to print (no password)."""
    if isinstance(db, Database):
        return str(db.path)
    return db.description
