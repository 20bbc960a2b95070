"""Both storage engines open, migrate to their newest schema and refuse a newer one."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from backend.storage.database import SchemaTooNewError
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from backend.storage.urls import redact


async def test_engine_answers_a_query(engine: StorageEngine) -> None:
    row = await engine.fetchone("SELECT 1 AS one")
    assert row is not None and row["one"] == 1


async def test_writes_cancelled_at_any_point_leave_the_engine_writable(
    engine: StorageEngine,
) -> None:
    # A request dropped by its client cancels its write wherever it is: waiting for the
    # transaction to begin, inside it, or waiting for the commit. None of those may leave a
    # transaction open behind it (on SQLite every later write would fail).
    await engine.execute("CREATE TABLE cancel_probe (n INTEGER)")

    async def write(n: int) -> None:
        async with engine.transaction() as conn:
            await conn.execute(f"INSERT INTO cancel_probe VALUES ({n})")

    for n in range(120):
        task = asyncio.create_task(write(n))
        for _ in range(n % 6):  # cancelled after 0-5 turns of the loop: every await in turn
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    await write(-1)
    row = await engine.fetchone("SELECT COUNT(*) AS n FROM cancel_probe WHERE n = -1")
    assert row is not None and row["n"] == 1


async def test_postgres_refuses_a_newer_schema(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE pixmart_schema SET version = version + 1")
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNewError):
        await PostgresDatabase(pg_url).open()


async def test_postgres_migrations_are_idempotent(pg_url: str) -> None:
    db = PostgresDatabase(pg_url)
    assert await db.migrate() == []
    assert await db.schema_version() >= 4


def test_redact_hides_the_password() -> None:
    url = "postgresql://pixmart:s3cret@127.0.0.1:5432/pixmart"
    assert "s3cret" not in redact(url)
    assert redact(url) == "postgresql://pixmart:***@127.0.0.1:5432/pixmart"
