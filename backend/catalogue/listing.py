"""Provides browse and search: keyset batches with signed cursors, counts and visible id sets.

Batches are ordered by a total keyset order ((created_at, id) or (price, id)) and continue
strictly after the last row sent, never with OFFSET: items added meanwhile land before the
position of a newest-first listing (created_at only grows), and nothing can be sent twice or
skipped because rows before the position come and go.

A text search is listed in parts (:class:`~backend.catalogue.filters.TextMatch`): the matches
in the sellers' own words, then those that match only by what the image model sees (when a
:class:`~backend.catalogue.seen.SeenVocabulary` is in use), each part in keyset order.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from backend.catalogue.cursors import CursorSigner, Position, cursor_binding
from backend.catalogue.filters import KEYSETS, Criteria, TextMatch
from backend.catalogue.page_cache import ListingPageCache, page_key
from backend.catalogue.repository import CatalogueRepository
from backend.catalogue.seen import SeenVocabulary
from protocol.errors import BadRequest
from protocol.messages.catalogue import ItemBatch, ItemCard, ListingFilters, SortOrder

#: The scope of browse cursors (see :func:`cursor_binding`).
BROWSE_SCOPE: Final = "catalogue.browse"


class Listings:
    """Browse batches, counts and id sets over the items a viewer may see."""

    def __init__(
        self,
        items: CatalogueRepository,
        signer: CursorSigner,
        *,
        batch_default: int,
        batch_max: int,
        cache: ListingPageCache | None = None,
    ) -> None:
        self._items = items
        #: Recently answered batches; ``None``: every batch is read from the repository.
        self.cache = cache
        self._signer = signer
        self.batch_default = batch_default
        self.batch_max = batch_max
        #: What the image model sees, in words; ``None``: text search matches sellers' words only.
        self.vocabulary: SeenVocabulary | None = None

    def criteria(self, filters: ListingFilters, viewer_id: int) -> Criteria:
        """The normalised criteria of ``filters``, with what the model sees that the words name.

        Raises:
            BadRequest: invalid filters.
        """
        criteria = Criteria.from_filters(filters, viewer_id)
        if criteria.words and self.vocabulary is not None:
            criteria = dataclasses.replace(criteria, seen=self.vocabulary.match(criteria.words))
        return criteria

    def batch_size(self, limit: int | None) -> int:
        """The batch size for a requested ``limit`` (the default when ``None``).

        Raises:
            BadRequest: ``limit`` is above the server's maximum.
        """
        if limit is None:
            return self.batch_default
        if limit > self.batch_max:
            raise BadRequest(f"A batch has at most {self.batch_max} items")
        return limit

    async def browse(
        self,
        viewer_id: int,
        filters: ListingFilters,
        sort: SortOrder,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ItemBatch:
        """Return the next batch of the listing (the first one, with the total, without cursor).

        Raises:
            BadRequest: invalid filters, limit or cursor (altered, or issued for other filters,
                another sort order or another user).
        """
        size = self.batch_size(limit)
        criteria = self.criteria(filters, viewer_id)
        if self.cache is None or criteria.seen is not None:
            # What the image model sees in a picture is recorded after the item is announced
            # (and again after a model change), so such matches are always read afresh.
            return await self._read(viewer_id, criteria, sort, size, cursor)
        # A hit skips the cursor's MAC too: an entry exists only for a cursor that opened.
        key = page_key(viewer_id, sort, criteria, cursor, size)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        generation = self.cache.generation
        batch = await self._read(viewer_id, criteria, sort, size, cursor)
        self.cache.put(key, generation, batch.items, batch.cursor, batch.total)
        return batch

    async def _read(
        self,
        viewer_id: int,
        criteria: Criteria,
        sort: SortOrder,
        size: int,
        cursor: str | None,
    ) -> ItemBatch:
        """The batch read from the repository (see :meth:`browse`)."""
        keyset = KEYSETS[sort]
        text = bool(criteria.words)
        binding = cursor_binding(BROWSE_SCOPE, viewer_id, sort.value, criteria.canonical())
        start: TextMatch | None = None
        after: Position | None = None
        if cursor is not None:
            start, after = keyset.open(self._signer.open(cursor, binding), text=text)
        cards: list[ItemCard] = []
        for part in criteria.parts():
            if start is not None and part is not None and part < start:
                continue
            # One more than asked tells whether another batch follows.
            cards += await self._items.page(
                viewer_id,
                criteria,
                sort,
                after=after if part == start else None,
                limit=size + 1 - len(cards),
                part=part,
            )
            if len(cards) > size:
                break
        more = len(cards) > size
        cards = cards[:size]
        next_cursor = (
            self._signer.seal(binding, keyset.position(cards[-1], text=text)) if more else None
        )
        total = await self._items.count(viewer_id, criteria) if cursor is None else None
        return ItemBatch(id=0, items=cards, cursor=next_cursor, total=total)

    async def visible_ids(self, viewer_id: int, filters: ListingFilters) -> list[int]:
        """Return the ids, ascending, of every item matching ``filters`` that the viewer sees.

        Meant for pre-filtering another index (similar-image search) before ranking.

        Raises:
            BadRequest: invalid filters.
        """
        return await self._items.matching_ids(viewer_id, self.criteria(filters, viewer_id))
