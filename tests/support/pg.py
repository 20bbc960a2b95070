"""Gives tests PostgreSQL databases of their own, each a copy of one migrated template.

The server comes from ``PIXMART_TEST_DATABASE`` or ``.services.env`` when
one answers; otherwise the checkout's own is started (``tests.support.services``) and stopped
again when the test session ends. Copying a template is much faster than migrating a new database
for every test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from backend.storage.postgres import PostgresDatabase
from tests.support import services

T = TypeVar("T")

#: How long to wait for a configured server before starting the checkout's own.
PROBE_TIMEOUT = 3.0


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a loop of its own, even from inside a running loop.

    Session fixtures set up from inside an async test cannot use ``asyncio.run`` on the
    test's thread.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for tests (a superuser on its ``pixmart`` database)."""
    configured = os.environ.get("PIXMART_TEST_DATABASE") or services.read_env_file().get(
        "PIXMART_DATABASE"
    )
    if configured and run_sync(_answers(configured)):
        yield configured
        return
    url, started = services.ensure_postgres()
    try:
        yield url
    finally:
        if started:
            services.postgres().down()


class Template:
    """A migrated database that each test's database is copied from."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"pixmart_template_{os.getpid()}_{secrets.token_hex(3)}"

    async def create(self) -> None:
        conn = await asyncpg.connect(self.server_url)
        try:
            await _drop_leftovers(conn)
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        await PostgresDatabase(with_database(self.server_url, self.name)).migrate()

    async def copy(self) -> str:
        """Make a new database from the template; return its URL."""
        name = f"pixmart_test_{os.getpid()}_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        finally:
            await conn.close()
        return with_database(self.server_url, name)

    async def drop(self, url: str) -> None:
        """Drop a database made by :meth:`copy` (or the template itself)."""
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _drop_leftovers(conn: asyncpg.Connection[Any]) -> None:
    """Drop the databases of test runs that were killed before they could clean up.

    Their names carry the test process's pid; a pid that no longer runs left them behind.
    """
    rows = await conn.fetch(
        "SELECT datname FROM pg_database WHERE datname ~ '^pixmart_(template|test)_[0-9]+_'"
    )
    for row in rows:
        name = str(row["datname"])
        if not _running(int(name.split("_")[2])):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
