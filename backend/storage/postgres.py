"""Provides the PostgreSQL database: an asyncpg connection pool and versioned migrations.

The second storage engine, for shops that run several server instances on one database. Unlike
SQLite there is no single writer: transactions run concurrently on pooled connections, so the
repositories written for it guard their invariants in SQL (``UPDATE ... WHERE stock >= $1``,
unique keys, row locks), never in process memory.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from backend.storage import pg_migrations as migrations_package
from backend.storage.database import SchemaTooNewError, discover_migrations
from backend.storage.urls import redact

log = logging.getLogger(__name__)

#: Any number; the one lock every pixmart server takes while it migrates, so two instances
#: starting together never apply the same migration twice.
MIGRATION_LOCK = 0x70697873  # "pixs"

ConnectionInit = Callable[["asyncpg.Connection[Any]"], Awaitable[None]]


class PostgresDatabase:
    """The PostgreSQL database of one server process (one pool, shared by every domain)."""

    #: Whether other server instances may use this database at the same time: yes, any number.
    shared = True

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 20) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool[Any] | None = None
        self._inits: list[ConnectionInit] = []

    def __repr__(self) -> str:
        return f"PostgresDatabase({redact(self.url)!r})"

    @property
    def description(self) -> str:
        """Where the data lives, safe to print."""
        return redact(self.url)

    def on_connect(self, init: ConnectionInit) -> None:
        """Run ``init`` on every new pooled connection (type codecs); call before :meth:`open`."""
        self._inits.append(init)

    async def _init_connection(self, conn: asyncpg.Connection[Any]) -> None:
        for init in self._inits:
            await init(conn)

    async def open(self, *, migrate: bool = True) -> None:
        """Apply pending migrations (unless told not to) and open the pool.

        Raises:
            SchemaTooNewError: The database was migrated by a newer pixmart.
        """
        await self.migrate(apply=migrate)
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            init=self._init_connection,
            # Statements are prepared per connection; a pool behind PgBouncer would need 0.
            statement_cache_size=256,
        )

    async def schema_version(self) -> int:
        """The version the database is at (0 for an empty one)."""
        conn = await asyncpg.connect(self.url)
        try:
            return await _current_version(conn)
        finally:
            await conn.close()

    async def migrate(self, *, apply: bool = True) -> list[str]:
        """Bring the schema up to this pixmart's version; return the migrations applied.

        Each migration runs in its own transaction under an advisory lock, so instances that
        start together serialise here and a crash mid-migration leaves the previous version.
        With ``apply=False`` only the version check runs.
        """
        migrations = discover_migrations(migrations_package)
        applied: list[str] = []
        conn = await asyncpg.connect(self.url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS pixmart_schema (version INTEGER NOT NULL)"
                )
                current = await _current_version(conn)
                if current > len(migrations):
                    raise SchemaTooNewError(
                        f"its schema version {current} is newer than this pixmart's "
                        f"{len(migrations)}"
                    )
                if not apply:
                    return applied
                for version, name, sql in migrations:
                    if version <= current:
                        continue
                    log.info("applying migration %s", name)
                    await conn.execute(sql)
                    await conn.execute("DELETE FROM pixmart_schema")
                    await conn.execute("INSERT INTO pixmart_schema (version) VALUES ($1)", version)
                    applied.append(name)
        finally:
            await conn.close()
        return applied

    async def close(self) -> None:
        """Close every pooled connection (waits for the ones in use to be released)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require_pool(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection[Any]]:
        """A pooled connection in autocommit mode, for a run of reads."""
        async with self._require_pool().acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(
        self, *, isolation: str = "read_committed"
    ) -> AsyncIterator[asyncpg.Connection[Any]]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        async with self._require_pool().acquire() as conn, conn.transaction(isolation=isolation):
            yield conn

    @asynccontextmanager
    async def exclusive_job(self, name: str) -> AsyncIterator[bool]:
        """Whether this instance runs the background job ``name`` now (``True``) or skips it.

        A session-level advisory lock, held on one pooled connection for the block, so of the
        instances sharing this database at most one is inside the block at a time; the others
        get ``False`` and skip this round. A dead instance's lock goes with its connection.
        """
        key = job_lock_key(name)
        async with self.connection() as conn:
            mine = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            try:
                yield mine
            finally:
                if mine:
                    # The pool's reset on release unlocks too; this frees the job at once.
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def fetchone(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """Run a read query and return its first row, or ``None``."""
        async with self.connection() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
            return row

    async def fetchall(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read query and return all its rows."""
        async with self.connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run a read query and return the first column of its first row."""
        async with self.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement in its own transaction; return the rows it changed."""
        async with self.connection() as conn:
            status: str = await conn.execute(sql, *args)
            return _rowcount(status)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows in a single transaction."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)


def job_lock_key(name: str) -> int:
    """The advisory lock key of background job ``name``: 64 bits of a hash of its name."""
    digest = hashlib.sha256(b"pixmart-job\x00" + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` (0 where there is none)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _current_version(conn: asyncpg.Connection[Any]) -> int:
    exists = await conn.fetchval("SELECT to_regclass('pixmart_schema') IS NOT NULL")
    if not exists:
        return 0
    value = await conn.fetchval("SELECT max(version) FROM pixmart_schema")
    return int(value or 0)
