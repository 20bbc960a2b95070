"""Provides the request handlers of favourites: add, remove, list and the ids of all.

Every handler acts on the caller's own favourites (the session's user).
"""

from __future__ import annotations

from backend.connection import Connection
from backend.dispatch import Dispatcher
from backend.favourites.service import FavouritesService
from protocol.messages.base import Reply
from protocol.messages.favourites import (
    AddFavourite,
    FavouriteBatch,
    FavouriteIds,
    FavouriteState,
    GetFavouriteIds,
    ListFavourites,
    RemoveFavourite,
)


def register(dispatcher: Dispatcher, favourites: FavouritesService) -> None:
    """Register the favourites handlers."""

    @dispatcher.route(AddFavourite)
    async def add(connection: Connection, request: AddFavourite) -> Reply:
        count = await favourites.add(connection.require_user().user_id, request.item_id)
        return FavouriteState(id=request.id, item_id=request.item_id, favourite=True, count=count)

    @dispatcher.route(RemoveFavourite)
    async def remove(connection: Connection, request: RemoveFavourite) -> Reply:
        count = await favourites.remove(connection.require_user().user_id, request.item_id)
        return FavouriteState(id=request.id, item_id=request.item_id, favourite=False, count=count)

    @dispatcher.route(ListFavourites, replayable=False)
    async def list_favourites(connection: Connection, request: ListFavourites) -> Reply:
        rows, cursor, total = await favourites.favourites(
            connection.require_user().user_id,
            limit=request.limit,
            cursor=request.cursor,
            pictures=request.pictures,
            sent=connection.pictures_sent,
        )
        return FavouriteBatch(id=request.id, favourites=rows, cursor=cursor, total=total)

    @dispatcher.route(GetFavouriteIds, replayable=False)
    async def favourite_ids(connection: Connection, request: GetFavouriteIds) -> Reply:
        ids = await favourites.item_ids(connection.require_user().user_id)
        return FavouriteIds(id=request.id, item_ids=ids)
