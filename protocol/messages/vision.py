"""Provides the similar-image messages: search by picture, similar items, tag suggestions.

Similar-image results stream in batches like every listing: the first :class:`SearchByImage`
carries the picture and returns a :class:`SimilarBatch` with a ``query_id``; the next batch is
asked for with that ``query_id`` and the batch's cursor instead of the picture. The server keeps
recent query vectors for a while; after a restart it answers ``not_found`` and the client sends
the picture again with the same cursor (the client helper does this by itself).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol.messages.base import Message, Reply, Request
from protocol.messages.catalogue import (
    BatchLimit,
    Cursor,
    ItemCard,
    ItemId,
    ListingFilters,
    PictureMode,
)

#: The server's handle of an embedded example picture (SHA-256 hex of the picture bytes).
QueryId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class SearchByImage(Request):
    """Items most like an example picture (not stored), best first.

    Attributes:
        image: The example picture (JPEG, PNG or WebP); omit it on later batches.
        query_id: The ``query_id`` of the first batch, for later batches.
        filters: The same filters as browse (tags, price range, in stock, mine).
        limit: Items per batch (the server's default when ``None``).
        cursor: The previous batch's cursor; ``None`` for the first batch.
        pictures: How the cards' thumbnails come (see :class:`PictureMode`).
    """

    image: bytes | None = None
    query_id: QueryId | None = None
    filters: ListingFilters = msgspec.field(default_factory=ListingFilters)
    limit: BatchLimit | None = None
    cursor: Cursor | None = None
    pictures: PictureMode = PictureMode.INLINE


class SimilarToItem(Request):
    """Items most like a stored item (its stored embedding; the item itself is left out).

    Attributes:
        pictures: How the cards' thumbnails come (see :class:`PictureMode`).
    """

    item_id: ItemId
    filters: ListingFilters = msgspec.field(default_factory=ListingFilters)
    limit: BatchLimit | None = None
    cursor: Cursor | None = None
    pictures: PictureMode = PictureMode.INLINE


class SimilarBatch(Reply):
    """One batch of similar items; each card's ``score`` is the cosine similarity (0..1).

    Attributes:
        cursor: Ask for the next batch with it; ``None`` when there is no more.
        query_id: Send it (instead of the picture) with the cursor for the next batch.
        total: How many items were ranked (first batch only).
    """

    items: list[ItemCard]
    cursor: str | None = None
    query_id: str | None = None
    total: int | None = None


class TagSuggestion(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A tag the image model proposes, with its probability (0..1)."""

    tag: str
    score: float


class GetTagSuggestions(Request):
    """Tags the image model proposes for one of the caller's items (never applied by itself)."""

    item_id: ItemId


class TagSuggestions(Reply):
    """The proposals for an item, most probable first; tags it carries already are left out."""

    item_id: int
    suggestions: list[TagSuggestion]


MESSAGES: tuple[type[Message], ...] = (
    SearchByImage,
    SimilarToItem,
    SimilarBatch,
    GetTagSuggestions,
    TagSuggestions,
)
