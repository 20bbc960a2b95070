"""Both storage engines open, migrate to their newest schema and refuse a newer one."""

from __future__ import annotations

import asyncpg
import pytest

from backend.storage.database import SchemaTooNewError
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from backend.storage.urls import redact


async def test_engine_answers_a_query(engine: StorageEngine) -> None:
    row = await engine.fetchone("SELECT 1 AS one")
    assert row is not None and row["one"] == 1


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
