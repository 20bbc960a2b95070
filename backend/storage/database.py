"""Provides the SQLite database: one serialised writer, a small pool of readers, and migrations.

SQLite allows one writer at a time; serialising write transactions behind an asyncio lock keeps
``BEGIN IMMEDIATE`` from ever waiting on ``busy_timeout`` and makes every transaction atomic from
the event loop's point of view. Readers use their own connections so browsing never waits on a
write (WAL mode lets them read the last committed state).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import os
import pkgutil
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import aiosqlite

from backend.storage import migrations as migrations_package

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]

#: The database holds password and token hashes: only the server's user may read it. SQLite gives
#: its -wal and -shm files the mode of the database file, so they follow.
FILE_MODE = 0o600
DIR_MODE = 0o700
#: What SQLite keeps next to the database file while it is open (or after a crash).
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def discover_migrations(package: ModuleType = migrations_package) -> list[tuple[int, str, str]]:
    """Return (version, name, sql) for every migration module of ``package``, in version order.

    A migration is a module named ``<letter><NNNN>_<what>`` (``m0001_accounts`` for SQLite,
    ``p0001_accounts`` for PostgreSQL) with an ``SQL`` string; versions run 1..N without gaps.
    """
    found: list[tuple[int, str, str]] = []
    for info in pkgutil.iter_modules(package.__path__):
        head, sep, _ = info.name.partition("_")
        if not sep or not head[1:].isdigit():
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found.append((int(head[1:]), info.name, str(module.SQL)))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


async def _roll_back(writer: aiosqlite.Connection) -> None:
    """Undo the writer's open transaction, if any, even if this task is cancelled meanwhile.

    The connection's thread runs what it is given in order, so this rollback follows a BEGIN
    or COMMIT still in its queue; with none open it does nothing. Shielded: a second
    cancellation must not leave the transaction open for the next writer.
    """
    await asyncio.shield(writer.rollback())


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer pixmart than this one."""


class Database:
    """The database of one server process."""

    #: Whether other server instances use this database at the same time: never, a SQLite
    #: database belongs to the one server that holds its data dir.
    shared = False

    def __init__(self, path: Path, *, readers: int = 2) -> None:
        self.path = path
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._reader_cycle: itertools.cycle[aiosqlite.Connection] | None = None
        self._write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 10000")
            # FULL: a commit the client saw acknowledged survives power loss too, not only a
            # crash.
            await conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            # Its thread is not a daemon: left open, it would keep a failed start from exiting.
            await conn.close()
            raise
        return conn

    async def open(self) -> None:
        """Open the connections, switch to WAL and apply pending migrations."""
        await asyncio.to_thread(self._make_private)
        self._writer = await self._connect()
        await self._writer.execute("PRAGMA journal_mode = WAL")
        await self._migrate()
        self._readers = [await self._connect() for _ in range(self._reader_count)]
        for reader in self._readers:
            await reader.execute("PRAGMA query_only = ON")
        self._reader_cycle = itertools.cycle(self._readers)

    def _make_private(self) -> None:
        """Create the database file 0600 before SQLite does, and tighten an older one's mode.

        SQLite would create it with the process's umask (0644 under the usual 022); the -wal
        and -shm files it makes later copy the database file's mode.
        """
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except FileExistsError:
            pass
        for suffix in _COMPANIONS:
            path = self.path.with_name(self.path.name + suffix)
            try:
                mode = path.stat().st_mode & 0o777
                if mode & 0o077:
                    # Made by an earlier pixmart, which left them readable by everyone. Only
                    # the others' bits go: an owner's read-only file stays read-only.
                    os.chmod(path, mode & 0o700)
            except FileNotFoundError:
                continue

    async def close(self) -> None:
        """Checkpoint the WAL and close every connection."""
        for reader in self._readers:
            await reader.close()
        self._readers = []
        if self._writer is not None:
            async with self._write_lock:
                try:
                    await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.DatabaseError as exc:
                    # E.g. a file that never opened as a database (a failed start): the
                    # connection must close all the same. Committed data is safe in the WAL.
                    log.warning("could not checkpoint %s: %s", self.path, exc)
                finally:
                    await self._writer.close()
                    self._writer = None

    async def migrate(self) -> list[str]:
        """Bring a closed database up to this pixmart's schema; return the migrations applied.

        Raises:
            SchemaTooNewError: The database was written by a newer pixmart.
        """
        await asyncio.to_thread(self._make_private)
        self._writer = await self._connect()
        try:
            await self._writer.execute("PRAGMA journal_mode = WAL")
            return await self._migrate()
        finally:
            await self.close()

    async def _migrate(self) -> list[str]:
        writer = self._require_writer()
        applied: list[str] = []
        async with writer.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        migrations = discover_migrations()
        if current > len(migrations):
            raise SchemaTooNewError(
                f"its schema version {current} is newer than this pixmart's {len(migrations)}"
            )
        for version, name, sql in migrations:
            if version <= current:
                continue
            log.info("applying migration %s", name)
            # One script, one transaction: a crash mid-migration leaves the old version intact.
            await writer.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
            applied.append(name)
        return applied

    def _require_writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return self._writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._write_lock:
            writer = self._require_writer()
            try:
                await writer.execute("BEGIN IMMEDIATE")
                yield writer
                await writer.commit()
            except BaseException:
                # Also when this task was cancelled while waiting for BEGIN or COMMIT: the
                # connection's thread runs them all the same, and a BEGIN left open would make
                # every later write fail ("cannot start a transaction within a transaction").
                await _roll_back(writer)
                raise

    @asynccontextmanager
    async def exclusive_job(self, name: str) -> AsyncIterator[bool]:
        """Whether this process runs the background job ``name`` now: always.

        The PostgreSQL engine's counterpart takes a lock shared by every instance; a SQLite
        database has one server (its data dir is locked), so there is no one to share with.
        """
        yield True

    def _reader(self) -> aiosqlite.Connection:
        if self._reader_cycle is None:
            raise RuntimeError("database is not open")
        return next(self._reader_cycle)

    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """Run a read query and return its first row, or ``None``."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """Run a read query and return all its rows.

        The whole query runs in one call on the reader's thread: a cursor read step by step
        would keep its snapshot open between steps, and another query sharing the connection
        meanwhile would see that old snapshot instead of the latest commit.
        """
        rows = await self._reader().execute_fetchall(sql, params)
        return list(rows)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows it changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one write statement for many parameter rows in a single transaction."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)
