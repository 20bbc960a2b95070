"""Provides the request handlers of saved searches: save, list, remove (one's own only)."""

from __future__ import annotations

from backend.alerts.service import SavedSearchService
from backend.connection import Connection
from backend.dispatch import Dispatcher
from protocol.messages.alerts import (
    ListSavedSearches,
    RemoveSavedSearch,
    SavedSearches,
    SaveSearch,
    SearchSaved,
)
from protocol.messages.base import Ok, Reply


def register(dispatcher: Dispatcher, searches: SavedSearchService) -> None:
    """Register the saved-search handlers; each acts on the caller's own searches."""

    @dispatcher.route(SaveSearch)
    async def save_search(connection: Connection, request: SaveSearch) -> Reply:
        saved = await searches.save(connection.require_user(), request)
        return SearchSaved(id=request.id, search=saved)

    @dispatcher.route(ListSavedSearches, replayable=False)
    async def list_saved(connection: Connection, request: ListSavedSearches) -> Reply:
        found = await searches.searches(connection.require_user().user_id)
        return SavedSearches(id=request.id, searches=found, limit=searches.limits.per_user)

    @dispatcher.route(RemoveSavedSearch)
    async def remove_saved(connection: Connection, request: RemoveSavedSearch) -> Reply:
        await searches.remove(connection.require_user().user_id, request.search_id)
        return Ok(id=request.id)
