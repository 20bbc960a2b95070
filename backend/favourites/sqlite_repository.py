"""Provides the SQLite implementation of the favourites repository.

Adds run in a write transaction of the database's serialised writer, so the bound is checked
against the count the insert sees.
"""

from __future__ import annotations

from backend.favourites.repository import (
    FAVOURITE_SELECT,
    StoredFavourite,
    favourite_from_row,
)
from backend.storage.database import Database

#: Above every id SQLite hands out.
_ABOVE_EVERY_ID = 2**63 - 1

_STATE_SQL = """
SELECT (SELECT count(*) FROM favourites WHERE user_id = :user) AS kept,
       EXISTS (SELECT 1 FROM favourites WHERE user_id = :user AND item_id = :item) AS already
"""

_INSERT_SQL = """
INSERT INTO favourites (user_id, item_id, title, price_cents, added_at) VALUES (?, ?, ?, ?, ?)
"""

_DELETE_SQL = "DELETE FROM favourites WHERE user_id = ? AND item_id = ?"

_COUNT_SQL = "SELECT count(*) FROM favourites WHERE user_id = ?"

_IDS_SQL = "SELECT item_id FROM favourites WHERE user_id = ? ORDER BY id DESC"

_LIST_SQL = f"{FAVOURITE_SELECT} WHERE f.user_id = ? AND f.id < ? ORDER BY f.id DESC LIMIT ?"

_KEEPERS_SQL = "SELECT user_id FROM favourites WHERE item_id = ? ORDER BY user_id"


class SqliteFavouritesRepository:
    """:class:`~backend.favourites.repository.FavouritesRepository` over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, user_id: int, item_id: int, title: str, price_cents: int, *, now: float, limit: int
    ) -> int | None:
        async with self._db.transaction() as conn:
            rows = list(await conn.execute_fetchall(_STATE_SQL, {"user": user_id, "item": item_id}))
            kept, already = int(rows[0]["kept"]), bool(rows[0]["already"])
            if already:
                return kept
            if kept >= limit:
                return None
            await conn.execute(_INSERT_SQL, (user_id, item_id, title, price_cents, now))
            return kept + 1

    async def remove(self, user_id: int, item_id: int) -> int:
        async with self._db.transaction() as conn:
            await conn.execute(_DELETE_SQL, (user_id, item_id))
            rows = list(await conn.execute_fetchall(_COUNT_SQL, (user_id,)))
            return int(rows[0][0])

    async def item_ids(self, user_id: int) -> list[int]:
        return [int(row[0]) for row in await self._db.fetchall(_IDS_SQL, (user_id,))]

    async def favourites(
        self, user_id: int, *, below: int | None, limit: int
    ) -> list[StoredFavourite]:
        start = _ABOVE_EVERY_ID if below is None else below
        rows = await self._db.fetchall(_LIST_SQL, (user_id, start, limit))
        return [favourite_from_row(row) for row in rows]

    async def keepers(self, item_id: int) -> list[int]:
        return [int(row[0]) for row in await self._db.fetchall(_KEEPERS_SQL, (item_id,))]
