"""Provides the saved-search messages: save a search that alerts, list them, remove one.

A saved search holds what a listing's filters hold (:class:`ListingFilters`: tags, words, price
range, in stock, one seller) and, optionally, "looks like this picture": an example picture (its
bytes, the ``query_id`` of a running picture search, or a stored item) whose embedding the server
keeps, with the least similarity in percent. Whenever an item is listed or changed, the server
matches it against every saved search and sends each owner who may see it one inbox notice of
kind ``NoticeKind.ALERT_MATCH`` per (search, item): a later edit of the same item does not alert
again.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol.messages.base import Message, Reply, Request
from protocol.messages.catalogue import ItemId, ListingFilters
from protocol.messages.vision import QueryId

SavedSearchId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
#: The least cosine similarity of a picture search, in percent.
SimilarityPercent = Annotated[int, msgspec.Meta(ge=1, le=100)]
#: How the example picture is named to its owner (e.g. its file name).
PictureLabel = Annotated[str, msgspec.Meta(max_length=200)]


class SavedSearch(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One saved search, as its owner sees it.

    Attributes:
        filters: The listing filters saved (normalised: tags as stored, ``mine`` as the
            owner's id).
        like_label: The example picture's name, for a picture search; ``None`` otherwise.
        min_similarity: The least similarity in percent, for a picture search.
        created_at: When it was saved (Unix time).
    """

    id: int
    filters: ListingFilters
    like_label: str | None = None
    min_similarity: int | None = None
    created_at: float


class SaveSearch(Request):
    """Save a search that alerts; at most one of ``like_image``, ``like_query_id`` and
    ``like_item_id`` names an example picture, and ``min_similarity`` goes with it.

    Attributes:
        filters: As a listing's; the words, tags, price range and stock all apply.
        like_image: An example picture (JPEG, PNG or WebP), embedded as a picture search's is.
        like_query_id: The ``query_id`` of the caller's running picture search.
        like_item_id: An item the caller may see; its stored embedding is kept.
        like_label: How to name the example to its owner (a file name, a title).
        min_similarity: How alike (percent) an item must look to alert.
    """

    filters: ListingFilters = msgspec.field(default_factory=ListingFilters)
    like_image: bytes | None = None
    like_query_id: QueryId | None = None
    like_item_id: ItemId | None = None
    like_label: PictureLabel = ""
    min_similarity: SimilarityPercent | None = None


class SearchSaved(Reply):
    """The search as saved."""

    search: SavedSearch


class ListSavedSearches(Request):
    """The caller's saved searches, oldest first (there are at most a hundred)."""


class SavedSearches(Reply):
    """The caller's saved searches, oldest first; ``limit`` is how many one may keep."""

    searches: list[SavedSearch]
    limit: int


class RemoveSavedSearch(Request):
    """Remove one of the caller's saved searches (another's is ``not_found``)."""

    search_id: SavedSearchId


MESSAGES: tuple[type[Message], ...] = (
    SaveSearch,
    SearchSaved,
    ListSavedSearches,
    SavedSearches,
    RemoveSavedSearch,
)
