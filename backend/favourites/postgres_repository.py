"""Provides the PostgreSQL implementation of the favourites repository.

An add locks the user's row first, so concurrent adds of one user (on any instance) are
checked against the bound one after the other.
"""

from __future__ import annotations

from backend.favourites.repository import (
    FAVOURITE_SELECT,
    StoredFavourite,
    favourite_from_row,
)
from backend.storage.postgres import PostgresDatabase

#: Above every id PostgreSQL hands out (identity columns are BIGINT).
_ABOVE_EVERY_ID = 2**63 - 1

_LOCK_USER_SQL = "SELECT 1 FROM users WHERE id = $1 FOR UPDATE"

_STATE_SQL = """
SELECT (SELECT count(*) FROM favourites WHERE user_id = $1) AS kept,
       EXISTS (SELECT 1 FROM favourites WHERE user_id = $1 AND item_id = $2) AS already
"""

_INSERT_SQL = """
INSERT INTO favourites (user_id, item_id, title, price_cents, added_at)
VALUES ($1, $2, $3, $4, $5)
"""

_DELETE_SQL = "DELETE FROM favourites WHERE user_id = $1 AND item_id = $2"

_COUNT_SQL = "SELECT count(*) FROM favourites WHERE user_id = $1"

_IDS_SQL = "SELECT item_id FROM favourites WHERE user_id = $1 ORDER BY id DESC"

_LIST_SQL = f"{FAVOURITE_SELECT} WHERE f.user_id = $1 AND f.id < $2 ORDER BY f.id DESC LIMIT $3"

_KEEPERS_SQL = "SELECT user_id FROM favourites WHERE item_id = $1 ORDER BY user_id"


class PostgresFavouritesRepository:
    """:class:`~backend.favourites.repository.FavouritesRepository` over PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def add(
        self, user_id: int, item_id: int, title: str, price_cents: int, *, now: float, limit: int
    ) -> int | None:
        async with self._db.transaction() as conn:
            await conn.execute(_LOCK_USER_SQL, user_id)
            row = await conn.fetchrow(_STATE_SQL, user_id, item_id)
            assert row is not None  # a SELECT without FROM always gives one row
            kept, already = int(row["kept"]), bool(row["already"])
            if already:
                return kept
            if kept >= limit:
                return None
            await conn.execute(_INSERT_SQL, user_id, item_id, title, price_cents, now)
            return kept + 1

    async def remove(self, user_id: int, item_id: int) -> int:
        async with self._db.transaction() as conn:
            await conn.execute(_DELETE_SQL, user_id, item_id)
            return int(await conn.fetchval(_COUNT_SQL, user_id))

    async def item_ids(self, user_id: int) -> list[int]:
        return [int(row[0]) for row in await self._db.fetchall(_IDS_SQL, user_id)]

    async def favourites(
        self, user_id: int, *, below: int | None, limit: int
    ) -> list[StoredFavourite]:
        start = _ABOVE_EVERY_ID if below is None else below
        rows = await self._db.fetchall(_LIST_SQL, user_id, start, limit)
        return [favourite_from_row(row) for row in rows]

    async def keepers(self, item_id: int) -> list[int]:
        return [int(row[0]) for row in await self._db.fetchall(_KEEPERS_SQL, item_id)]
