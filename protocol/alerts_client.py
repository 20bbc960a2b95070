"""Provides the saved-search calls over a :class:`~protocol.client.Session`.

The TUI, the scripting CLI, the tests and the benchmarks save, list and remove searches through
these helpers, so each request is built in one place.
"""

from __future__ import annotations

from protocol.client import Session
from protocol.messages.alerts import (
    ListSavedSearches,
    RemoveSavedSearch,
    SavedSearch,
    SavedSearches,
    SaveSearch,
    SearchSaved,
)
from protocol.messages.base import Ok
from protocol.messages.catalogue import ListingFilters


async def save_search(
    session: Session,
    filters: ListingFilters | None = None,
    *,
    like_image: bytes | None = None,
    like_query_id: str | None = None,
    like_item_id: int | None = None,
    like_label: str = "",
    min_similarity: int | None = None,
) -> SavedSearch:
    """Save a search that alerts; give at most one example picture (see :class:`SaveSearch`).

    Raises:
        BadRequest: the filters are invalid or ask for nothing.
        Conflict: the user keeps as many saved searches as allowed.
        Unavailable: a picture search on a server without its image model.
    """
    request = SaveSearch(
        filters=filters or ListingFilters(),
        like_image=like_image,
        like_query_id=like_query_id,
        like_item_id=like_item_id,
        like_label=like_label,
        min_similarity=min_similarity,
    )
    return (await session.request(request, SearchSaved)).search


async def saved_searches(session: Session) -> SavedSearches:
    """The user's saved searches, oldest first, and how many one may keep."""
    return await session.request(ListSavedSearches(), SavedSearches)


async def remove_saved_search(session: Session, search_id: int) -> None:
    """Remove one of the user's saved searches.

    Raises:
        NotFound: the user has no saved search of that id.
    """
    await session.request(RemoveSavedSearch(search_id=search_id), Ok)
