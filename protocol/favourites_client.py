"""Provides the favourites calls over a :class:`~protocol.client.Session`.

The TUI, the scripting CLI and the tests keep favourites through these helpers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from protocol.client import Session
from protocol.messages.catalogue import PictureMode
from protocol.messages.favourites import (
    AddFavourite,
    Favourite,
    FavouriteBatch,
    FavouriteIds,
    FavouriteState,
    GetFavouriteIds,
    ListFavourites,
    RemoveFavourite,
)
from protocol.paging import paginate
from protocol.pictures import resolve_thumbnails


async def add_favourite(session: Session, item_id: int) -> FavouriteState:
    """Keep an item among the favourites (``not_found`` if one may not see it)."""
    return await session.request(AddFavourite(item_id=item_id), FavouriteState)


async def remove_favourite(session: Session, item_id: int) -> FavouriteState:
    """Take an item out of the favourites (nothing happens if it was not there)."""
    return await session.request(RemoveFavourite(item_id=item_id), FavouriteState)


async def set_favourite(session: Session, item_id: int, favourite: bool) -> FavouriteState:
    """Add or remove, as ``favourite`` says: what a toggle sends once it knows the state."""
    if favourite:
        return await add_favourite(session, item_id)
    return await remove_favourite(session, item_id)


async def favourite_ids(session: Session) -> list[int]:
    """Every favourite's item id, newest first."""
    return (await session.request(GetFavouriteIds(), FavouriteIds)).item_ids


async def favourites_batch(
    session: Session,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    with_pictures: bool = True,
    pictures: PictureMode = PictureMode.INLINE,
) -> FavouriteBatch:
    """One batch of the caller's favourites, newest first.

    Args:
        pictures: How the server sends thumbnails (:attr:`PictureMode.UNSENT` for a client that
            keeps the pictures it was sent).
        with_pictures: give every card its thumbnail's bytes (from the session's picture store,
            or fetched for the whole batch at once); a script that wants the facts alone skips it.
    """
    request = ListFavourites(limit=limit, cursor=cursor, pictures=pictures)
    batch = await session.request(request, FavouriteBatch)
    if with_pictures:
        cards = [favourite.card for favourite in batch.favourites if favourite.card is not None]
        await resolve_thumbnails(session, cards)
    return batch


async def iter_favourites(
    session: Session, *, limit: int | None = None, with_pictures: bool = True
) -> AsyncIterator[Favourite]:
    """Every favourite of the caller, newest first, fetched a batch at a time as consumed."""

    async def fetch(size: int | None, cursor: str | None) -> tuple[list[Favourite], str | None]:
        batch = await favourites_batch(
            session,
            limit=size,
            cursor=cursor,
            with_pictures=with_pictures,
            # Without pictures the server sends their hashes only: no bytes to throw away.
            pictures=PictureMode.INLINE if with_pictures else PictureMode.HASHES,
        )
        return batch.favourites, batch.cursor

    async for favourite in paginate(fetch, batch=limit):
        yield favourite
