"""Provides the secrets every server instance on one PostgreSQL database must share.

A cursor signed by one instance must open on any other (a client paging through the balancer
meets several), so the signing key is kept in the database instead of each data dir. The first
instance to ask creates it; instances asking at once all end up with the same one, because the
insert does nothing when a row exists and everyone then reads the row that won.
"""

from __future__ import annotations

import secrets

from backend.storage.postgres import PostgresDatabase


async def database_secret(db: PostgresDatabase, name: str, size: int) -> bytes:
    """The secret called ``name``, ``size`` random bytes created on first use."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO cluster_secrets (name, secret) VALUES ($1, $2)"
            " ON CONFLICT (name) DO NOTHING",
            name,
            secrets.token_bytes(size),
        )
        stored = await conn.fetchval("SELECT secret FROM cluster_secrets WHERE name = $1", name)
    secret = bytes(stored)
    if len(secret) != size:
        raise RuntimeError(f"the stored secret {name!r} is damaged; delete its row")
    return secret
