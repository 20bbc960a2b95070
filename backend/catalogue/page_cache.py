"""Provides a per-server cache of listing batches, dropped whole whenever the catalogue changes.

A person scrolling back, re-sorting or reopening the gallery asks for batches this server has
just answered. A hit costs no query, no thread hop and no cursor MAC: the batch (its cards with
their thumbnails' hashes, the next cursor and the total) is copied out of memory.

Why it is never stale and never shows anything to the wrong person:

* Every item event (listed, edited, stock or visibility changed, deleted), whether it happened
  on this instance or reached it over the event bus from another one, bumps the catalogue's
  :attr:`generation` and empties the cache (:meth:`ListingPageCache.invalidate`, wired to the
  ``"catalogue"`` topic of :class:`~backend.events.EventHub`).
* A batch read while the catalogue changed is not stored: its generation, taken before the
  query, no longer matches (:meth:`put`).
* The key holds everything the answer depends on, the viewer included: a listing shows public
  items plus the viewer's own private ones, so two viewers never share an entry. The cursor in
  the key is the one the client sent; an entry exists only once that very cursor opened for
  that very binding (viewer, sort, filters), so a hit needs no second check of its MAC.
* Listings that match by what the image model sees are never cached (see
  :meth:`~backend.catalogue.listing.Listings.browse`): those facts are written after the
  item's announcement.
* Entries older than :data:`MAX_AGE` seconds are not used, a backstop for a write that
  announces nothing (an operator's manual SQL).

The cache is bounded (:data:`MAX_PAGES`, least recently used out first) and holds no picture
bytes: cards are copied in and out without their inline thumbnails.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from backend.catalogue.filters import Criteria
from protocol.messages.catalogue import ItemBatch, ItemCard, SortOrder

#: Batches kept at most (about 24 cards of a few hundred bytes each: a few MB in all).
MAX_PAGES: Final = 4096
#: Seconds an entry is used at most, whatever the events say.
MAX_AGE: Final = 30.0

#: What one batch answers: viewer, sort, filters, cursor sent and batch size.
PageKey = tuple[Hashable, ...]


@dataclass(frozen=True, slots=True)
class _Page:
    cards: tuple[ItemCard, ...]
    cursor: str | None
    total: int | None
    stored_at: float


def page_key(
    viewer_id: int, sort: SortOrder, criteria: Criteria, cursor: str | None, size: int
) -> PageKey:
    """The key of one batch: everything its answer depends on (``seen`` follows the words)."""
    return (
        viewer_id,
        sort.value,
        criteria.tags,
        criteria.words,
        criteria.owner_id,
        criteria.min_price_cents,
        criteria.max_price_cents,
        criteria.in_stock,
        cursor,
        size,
    )


def _bare(card: ItemCard) -> ItemCard:
    """A copy of ``card`` without inline picture bytes (callers fill those per connection)."""
    return msgspec.structs.replace(card, thumbnail=None)


class ListingPageCache:
    """Recently answered listing batches of this server (see the module docstring)."""

    def __init__(
        self,
        *,
        max_pages: int = MAX_PAGES,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pages < 1:
            raise ValueError("the cache must hold at least one batch")
        self._pages: OrderedDict[PageKey, _Page] = OrderedDict()
        self._max_pages = max_pages
        self._max_age = max_age
        self._clock = clock
        #: Bumped by every change to the catalogue; a batch is stored only under the one it
        #: was read in.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._pages)

    def invalidate(self) -> None:
        """The catalogue changed: forget every batch, refuse those being read."""
        self.generation += 1
        self._pages.clear()

    def get(self, key: PageKey) -> ItemBatch | None:
        """A fresh copy of the batch stored under ``key``, or ``None``."""
        page = self._pages.get(key)
        if page is None:
            return None
        if self._clock() - page.stored_at > self._max_age:
            del self._pages[key]
            return None
        self._pages.move_to_end(key)
        return ItemBatch(
            id=0,
            items=[msgspec.structs.replace(card) for card in page.cards],
            cursor=page.cursor,
            total=page.total,
        )

    def put(
        self,
        key: PageKey,
        generation: int,
        cards: Sequence[ItemCard],
        cursor: str | None,
        total: int | None,
    ) -> None:
        """Keep a batch read under ``generation`` (nothing if the catalogue changed since)."""
        if generation != self.generation:
            return
        self._pages[key] = _Page(tuple(_bare(card) for card in cards), cursor, total, self._clock())
        self._pages.move_to_end(key)
        while len(self._pages) > self._max_pages:
            self._pages.popitem(last=False)
