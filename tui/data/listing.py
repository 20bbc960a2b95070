"""Provides :class:`Listing`: one catalogue listing, fetched batch by batch and kept current.

The listing asks for the next batch only when told to, with the cursor of the previous one, so a
connection drop in the middle (the session re-sends the request once it is back) neither skips
nor repeats items; any item seen twice is kept once. Live events change or remove items in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from protocol.catalogue_client import browse
from protocol.client import Session
from protocol.messages.catalogue import ItemBatch, ItemCard, ListingFilters, SortOrder
from protocol.messages.live import ItemChanged
from protocol.messages.vision import SimilarBatch


@dataclass(frozen=True)
class ListingQuery:
    """What a listing shows and in which order."""

    filters: ListingFilters = field(default_factory=ListingFilters)
    sort: SortOrder = SortOrder.NEWEST

    def describe(self) -> str:
        """Words for the status line, e.g. ``tags: cat, print · "sunset" · in stock``."""
        filters = self.filters
        parts: list[str] = []
        if filters.text:
            parts.append(f"“{filters.text}”")
        if filters.tags:
            parts.append("tags: " + ", ".join(filters.tags))
        if filters.min_price_cents is not None or filters.max_price_cents is not None:
            parts.append("price filtered")
        if filters.in_stock:
            parts.append("in stock")
        if filters.mine:
            parts.append("mine")
        if self.sort is SortOrder.PRICE_UP:
            parts.append("cheapest first")
        elif self.sort is SortOrder.PRICE_DOWN:
            parts.append("dearest first")
        return " · ".join(parts)

    def listing(self, batch_size: int | None = None) -> Listing:
        """A new, empty listing of this query (subclasses bring their own kind)."""
        return Listing(self, batch_size)


class Listing:
    """The items of one :class:`ListingQuery` loaded so far.

    Args:
        query: filters and sort order.
        batch_size: items per batch; the server's default when ``None``.
    """

    def __init__(self, query: ListingQuery, batch_size: int | None = None) -> None:
        self.query = query
        self.batch_size = batch_size
        self.items: list[ItemCard] = []
        self.cursor: str | None = None
        self.total: int | None = None
        self.started = False
        #: Batches received so far.
        self.batches = 0
        self._positions: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def exhausted(self) -> bool:
        """Whether every batch has been fetched."""
        return self.started and self.cursor is None

    def index_of(self, item_id: int) -> int | None:
        """Where the item is in :attr:`items`, if loaded."""
        return self._positions.get(item_id)

    def get(self, item_id: int) -> ItemCard | None:
        """The loaded card of ``item_id``."""
        position = self._positions.get(item_id)
        return self.items[position] if position is not None else None

    async def fetch_next(self, session: Session) -> list[ItemCard]:
        """Fetch the next batch and return the items it added (none once exhausted).

        Raises:
            PixmartError: the server's typed error (e.g. a cursor it no longer accepts).
        """
        if self.exhausted:
            return []
        return self.absorb(await self.fetch_batch(session))

    async def fetch_batch(self, session: Session) -> ItemBatch | SimilarBatch:
        """Ask the server for the batch after :attr:`cursor` (subclasses ask differently)."""
        return await browse(
            session,
            self.query.filters,
            self.query.sort,
            limit=self.batch_size,
            cursor=self.cursor,
        )

    def absorb(self, batch: ItemBatch | SimilarBatch) -> list[ItemCard]:
        """Append a batch's new items and move the cursor on."""
        if batch.total is not None:
            self.total = batch.total
        added: list[ItemCard] = []
        for card in batch.items:
            if card.id in self._positions:
                continue  # already shown: a retried request, or an item that moved
            self._positions[card.id] = len(self.items)
            self.items.append(card)
            added.append(card)
        self.cursor = batch.cursor
        self.started = True
        self.batches += 1
        return added

    def apply_change(self, event: ItemChanged) -> int | None:
        """Update a loaded item from a live event; returns its position, if loaded."""
        position = self._positions.get(event.item_id)
        if position is None:
            return None
        card = self.items[position]
        self.items[position] = msgspec.structs.replace(
            card,
            title=event.title,
            price_cents=event.price_cents,
            stock=event.stock,
            public=event.public,
        )
        return position

    def replace(self, card: ItemCard) -> int | None:
        """Put a fresher card of a loaded item in place; returns its position, if loaded."""
        position = self._positions.get(card.id)
        if position is not None:
            self.items[position] = card
        return position

    def remove(self, item_id: int) -> int | None:
        """Drop an item (deleted, or no longer visible); returns where it was, if loaded."""
        position = self._positions.pop(item_id, None)
        if position is None:
            return None
        del self.items[position]
        for later in self.items[position:]:
            self._positions[later.id] -= 1
        if self.total is not None:
            self.total = max(0, self.total - 1)
        return position


__all__ = ["Listing", "ListingQuery"]
