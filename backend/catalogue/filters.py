"""Provides listing criteria as SQL: visibility, filters and the keyset orders.

Every listing, count and id set goes through :meth:`Criteria.where`, so the visibility rule
(public items, plus the viewer's own private ones) is written exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aiosqlite

from backend.catalogue.cursors import Position
from backend.catalogue.tags import normalise_tags
from backend.catalogue.textsearch import fts_query
from protocol.errors import BadRequest
from protocol.messages.catalogue import ListingFilters, SortOrder

#: The rule for what a viewer may see: parameter is the viewer's user id.
VISIBLE_SQL: Final = "(i.public = 1 OR i.owner_id = ?)"


@dataclass(frozen=True, slots=True)
class Criteria:
    """Normalised filters of one listing (see :class:`ListingFilters`)."""

    tags: tuple[str, ...] = ()
    match: str | None = None
    owner_id: int | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    in_stock: bool = False

    @classmethod
    def from_filters(cls, filters: ListingFilters, viewer_id: int) -> Criteria:
        """Validate and normalise the filters a viewer sent.

        Raises:
            BadRequest: a tag is invalid, the price range is empty, or ``mine`` contradicts
                ``owner_id``.
        """
        owner_id = filters.owner_id
        if filters.mine:
            if owner_id is not None and owner_id != viewer_id:
                raise BadRequest("'mine' and another seller's id cannot be combined")
            owner_id = viewer_id
        low, high = filters.min_price_cents, filters.max_price_cents
        if low is not None and high is not None and low > high:
            raise BadRequest("The lowest price is above the highest price")
        return cls(
            tags=tuple(sorted(normalise_tags(filters.tags))),
            match=fts_query(filters.text),
            owner_id=owner_id,
            min_price_cents=low,
            max_price_cents=high,
            in_stock=filters.in_stock,
        )

    def canonical(self) -> list[object]:
        """The criteria as plain values, for binding cursors to them."""
        return [
            list(self.tags),
            self.match,
            self.owner_id,
            self.min_price_cents,
            self.max_price_cents,
            self.in_stock,
        ]

    def where(self, viewer_id: int) -> tuple[str, list[object]]:
        """Return the SQL condition on ``items i`` and its parameters."""
        parts = [VISIBLE_SQL]
        params: list[object] = [viewer_id]
        if self.owner_id is not None:
            parts.append("i.owner_id = ?")
            params.append(self.owner_id)
        if self.min_price_cents is not None:
            parts.append("i.price_cents >= ?")
            params.append(self.min_price_cents)
        if self.max_price_cents is not None:
            parts.append("i.price_cents <= ?")
            params.append(self.max_price_cents)
        if self.in_stock:
            parts.append("i.stock > 0")
        for tag in self.tags:
            parts.append(
                "i.id IN (SELECT it.item_id FROM item_tags it JOIN tags t ON t.id = it.tag_id"
                " WHERE t.name = ?)"
            )
            params.append(tag)
        if self.match is not None:
            # The expression comes from fts_query only: never raw input.
            parts.append("i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
            params.append(self.match)
        return " AND ".join(parts), params


@dataclass(frozen=True, slots=True)
class Ordering:
    """A keyset order: ``ORDER BY``, the "after this position" condition and the row's key."""

    order_by: str
    after: str
    key: Callable[[aiosqlite.Row], Position]
    types: tuple[type, type]

    def check(self, position: Position) -> Position:
        """Return ``position`` if it has the shape of this order's keys, else BadRequest."""
        if len(position) != 2 or not all(
            isinstance(value, kind) or (kind is float and type(value) is int)
            for value, kind in zip(position, self.types, strict=True)
        ):
            raise BadRequest("The cursor does not belong to this sort order")
        return position


ORDERINGS: Final[dict[SortOrder, Ordering]] = {
    SortOrder.NEWEST: Ordering(
        "i.created_at DESC, i.id DESC",
        "(i.created_at, i.id) < (?, ?)",
        lambda row: [float(row["created_at"]), int(row["id"])],
        (float, int),
    ),
    SortOrder.PRICE_UP: Ordering(
        "i.price_cents ASC, i.id ASC",
        "(i.price_cents, i.id) > (?, ?)",
        lambda row: [int(row["price_cents"]), int(row["id"])],
        (int, int),
    ),
    SortOrder.PRICE_DOWN: Ordering(
        "i.price_cents DESC, i.id DESC",
        "(i.price_cents, i.id) < (?, ?)",
        lambda row: [int(row["price_cents"]), int(row["id"])],
        (int, int),
    ),
}
