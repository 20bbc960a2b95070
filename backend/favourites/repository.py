"""Provides what the favourites service asks of storage, and the favourite rows it reads.

The implementations (``sqlite_repository``, ``postgres_repository``) give the same answers; the
contract suite ``tests/contract/test_favourites_repository.py`` holds them to that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol


@dataclass(frozen=True, slots=True)
class StoredFavourite:
    """A favourite as stored (title and price as seen when added) and whether its item exists.

    Attributes:
        id: The row's id; ids grow with time (the keyset of the listing).
    """

    id: int
    item_id: int
    title: str
    price_cents: int
    added_at: float
    item_exists: bool


class _Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


#: The columns of a favourites listing, as :func:`favourite_from_row` reads them; each engine
#: adds its own conditions.
FAVOURITE_SELECT: Final = """
SELECT f.id, f.item_id, f.title, f.price_cents, f.added_at, i.id IS NOT NULL AS item_exists
FROM favourites AS f LEFT JOIN items AS i ON i.id = f.item_id
"""


def favourite_from_row(row: _Row) -> StoredFavourite:
    """A stored favourite from a row of :data:`FAVOURITE_SELECT` (SQLite or asyncpg)."""
    return StoredFavourite(
        id=int(row["id"]),
        item_id=int(row["item_id"]),
        title=str(row["title"]),
        price_cents=int(row["price_cents"]),
        added_at=float(row["added_at"]),
        item_exists=bool(row["item_exists"]),
    )


class FavouritesRepository(Protocol):
    """Users' favourites, each list bounded."""

    async def add(
        self, user_id: int, item_id: int, title: str, price_cents: int, *, now: float, limit: int
    ) -> int | None:
        """Keep the item (with the title and price seen now) unless kept already.

        Returns:
            How many favourites the user keeps after, or ``None`` (nothing changed) when the
            item is not kept yet and the user keeps ``limit`` already.
        """

    async def remove(self, user_id: int, item_id: int) -> int:
        """Drop the item from the user's favourites (if kept); how many they keep after."""

    async def item_ids(self, user_id: int) -> list[int]:
        """The item ids of every favourite of the user, newest first."""

    async def favourites(
        self, user_id: int, *, below: int | None, limit: int
    ) -> list[StoredFavourite]:
        """Up to ``limit`` of the user's favourites with ids below ``below`` (``None``: from
        the newest), newest first."""

    async def keepers(self, item_id: int) -> list[int]:
        """The users who keep the item among their favourites."""
