"""Provides :class:`Listing`: one catalogue listing, fetched batch by batch and kept current.

A listing is a :class:`~protocol.paging.BatchedList` of item cards: the next batch only when told
to, each item kept once. Live events change or remove items in place. A listing may start from
saved cards (the gallery of the last visit, :meth:`Listing.preload`): its first batch from the
server then takes their place in one step (:meth:`Listing.reconcile`), so the cards on screen are
updated where they stand and never replaced by an empty grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from protocol.catalogue_client import browse
from protocol.client import Session
from protocol.messages.catalogue import (
    ItemBatch,
    ItemCard,
    ListingFilters,
    PictureMode,
    SortOrder,
)
from protocol.messages.live import ItemChanged
from protocol.messages.vision import SimilarBatch
from protocol.paging import BatchedList


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


class Listing(BatchedList[ItemCard]):
    """The items of one :class:`ListingQuery` loaded so far, each kept once by id.

    Args:
        query: filters and sort order.
        batch_size: items per batch; the server's default when ``None``.
    """

    def __init__(self, query: ListingQuery, batch_size: int | None = None) -> None:
        super().__init__(key=_card_id)
        self.query = query
        self.batch_size = batch_size
        #: Whether the items are shown only until the server's first batch replaces them (saved
        #: ones on a warm reopen, or the old ones during a refresh).
        self.provisional = False
        #: How the next batch's thumbnails come (see :class:`PictureMode`).
        self.picture_mode = PictureMode.UNSENT

    def preload(self, cards: list[ItemCard], total: int | None) -> None:
        """Show saved ``cards`` until the first batch arrives (the listing is not started)."""
        self.reset()
        for card in cards:
            self._positions[card.id] = len(self.items)
            self.items.append(card)
        self.total = total
        self.provisional = True

    def reset(self) -> None:
        """Forget every item and the cursor, keeping the same :attr:`items` list object."""
        self.items.clear()
        self._positions.clear()
        self.cursor = None
        self.started = False
        self.batches = 0
        self.total = None

    def reconcile(self, batch: ItemBatch | SimilarBatch) -> list[ItemCard]:
        """Replace the saved items with the server's first batch, in one step; returns it.

        Items gone from the server are dropped, changed ones updated, new ones added, and
        :attr:`items` stays the same list, so a grid showing it never sees it empty.
        """
        self.reset()
        self.provisional = False
        self.picture_mode = PictureMode.UNSENT  # later batches: pictures not seen are inline
        return self.absorb(batch)

    async def fetch_next(self, session: Session) -> list[ItemCard]:
        """Fetch the next batch and return the items it added (none once exhausted).

        A provisional listing fetches its first batch and :meth:`reconcile` s with it.

        Raises:
            PixmartError: the server's typed error (e.g. a cursor it no longer accepts).
        """
        if self.exhausted:
            return []
        if self.provisional:
            # Ask from the start, whatever a saved listing's state: the batch replaces it all.
            self.cursor = None
            return self.reconcile(await self.fetch_batch(session))
        return self.absorb(await self.fetch_batch(session))

    async def fetch_batch(self, session: Session) -> ItemBatch | SimilarBatch:
        """Ask the server for the batch after :attr:`cursor` (subclasses ask differently)."""
        return await browse(
            session,
            self.query.filters,
            self.query.sort,
            limit=self.batch_size,
            cursor=self.cursor,
            pictures=self.picture_mode,
        )

    def absorb(self, batch: ItemBatch | SimilarBatch) -> list[ItemCard]:
        """Append a batch's new items and move the cursor on."""
        return self.add_batch(batch.items, batch.cursor, batch.total)

    def apply_change(self, event: ItemChanged) -> int | None:
        """Update a loaded item from a live event; returns its position, if loaded."""
        card = self.get(event.item_id)
        if card is None:
            return None
        return self.replace(
            msgspec.structs.replace(
                card,
                title=event.title,
                price_cents=event.price_cents,
                stock=event.stock,
                public=event.public,
            )
        )


def _card_id(card: ItemCard) -> int:
    return card.id


__all__ = ["Listing", "ListingQuery"]
