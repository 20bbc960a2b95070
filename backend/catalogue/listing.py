"""Provides browse and search: keyset batches with signed cursors, counts and visible id sets.

Batches are ordered by a total keyset order ((created_at, id) or (price, id)) and continue
strictly after the last row sent, never with OFFSET: items added meanwhile land before the
position of a newest-first listing (created_at only grows), and nothing can be sent twice or
skipped because rows before the position come and go.
"""

from __future__ import annotations

from typing import Final

from backend.catalogue.cursors import CursorSigner, cursor_binding
from backend.catalogue.filters import KEYSETS, Criteria
from backend.catalogue.repository import CatalogueRepository
from protocol.errors import BadRequest
from protocol.messages.catalogue import ItemBatch, ListingFilters, SortOrder

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
    ) -> None:
        self._items = items
        self._signer = signer
        self.batch_default = batch_default
        self.batch_max = batch_max

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
        criteria = Criteria.from_filters(filters, viewer_id)
        keyset = KEYSETS[sort]
        binding = cursor_binding(BROWSE_SCOPE, viewer_id, sort.value, criteria.canonical())
        after = keyset.check(self._signer.open(cursor, binding)) if cursor is not None else None
        # One more than asked tells whether another batch follows.
        cards = await self._items.page(viewer_id, criteria, sort, after=after, limit=size + 1)
        more = len(cards) > size
        cards = cards[:size]
        next_cursor = self._signer.seal(binding, keyset.key(cards[-1])) if more else None
        total = await self._items.count(viewer_id, criteria) if cursor is None else None
        return ItemBatch(id=0, items=cards, cursor=next_cursor, total=total)

    async def visible_ids(self, viewer_id: int, filters: ListingFilters) -> list[int]:
        """Return the ids, ascending, of every item matching ``filters`` that the viewer sees.

        Meant for pre-filtering another index (similar-image search) before ranking.

        Raises:
            BadRequest: invalid filters.
        """
        return await self._items.matching_ids(viewer_id, Criteria.from_filters(filters, viewer_id))
