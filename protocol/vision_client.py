"""Provides client helpers for similar-image search and tag suggestions.

:func:`iter_similar_to_picture` streams the items most like a picture batch by batch, sending the
picture only once; if the server forgot the search (it restarted, or the query aged out) the
helper sends the picture again with the same cursor, so a long listing survives reconnects and
restarts without the caller noticing.

Like every listing, batches come with each card's thumbnail bytes, the ones the session's
picture store holds not being sent again (see :mod:`protocol.pictures`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from protocol.client import Session
from protocol.errors import NotFound
from protocol.messages.catalogue import ItemCard, ListingFilters, PictureMode
from protocol.messages.vision import (
    GetTagSuggestions,
    SearchByImage,
    SimilarBatch,
    SimilarToItem,
    TagSuggestion,
    TagSuggestions,
)
from protocol.paging import paginate
from protocol.pictures import PictureStore, resolve_thumbnails


async def search_by_picture(
    session: Session,
    image: bytes,
    filters: ListingFilters | None = None,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    query_id: str | None = None,
    pictures: PictureMode = PictureMode.UNSENT,
    store: PictureStore | None = None,
) -> SimilarBatch:
    """One batch of the items most like ``image`` (best first, ``score`` set on each card).

    For the next batch pass the previous batch's ``cursor`` and ``query_id``; the picture is
    then sent again only if the server no longer knows the query. ``pictures`` and ``store``
    as for :func:`protocol.catalogue_client.browse`.
    """
    filters = filters or ListingFilters()
    batch: SimilarBatch | None = None
    if query_id is not None and cursor is not None:
        try:
            batch = await session.request(
                SearchByImage(
                    query_id=query_id,
                    filters=filters,
                    limit=limit,
                    cursor=cursor,
                    pictures=pictures,
                ),
                SimilarBatch,
            )
        except NotFound:
            pass  # the server forgot the query: send the picture with the same cursor
    if batch is None:
        batch = await session.request(
            SearchByImage(
                image=image, filters=filters, limit=limit, cursor=cursor, pictures=pictures
            ),
            SimilarBatch,
        )
    await resolve_thumbnails(session, batch.items, store)
    return batch


async def similar_to_item(
    session: Session,
    item_id: int,
    filters: ListingFilters | None = None,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    pictures: PictureMode = PictureMode.UNSENT,
    store: PictureStore | None = None,
) -> SimilarBatch:
    """One batch of the items most like a stored item (the item itself left out).

    ``pictures`` and ``store`` as for :func:`protocol.catalogue_client.browse`.
    """
    request = SimilarToItem(
        item_id=item_id,
        filters=filters or ListingFilters(),
        limit=limit,
        cursor=cursor,
        pictures=pictures,
    )
    batch = await session.request(request, SimilarBatch)
    await resolve_thumbnails(session, batch.items, store)
    return batch


async def iter_similar(
    session: Session,
    *,
    image: bytes | None = None,
    item_id: int | None = None,
    filters: ListingFilters | None = None,
    batch: int | None = None,
    max_items: int | None = None,
) -> AsyncIterator[ItemCard]:
    """Yield similar items (to ``image`` or to ``item_id``), fetching batches on demand."""
    if (image is None) == (item_id is None):
        raise ValueError("give either an image or an item id")
    query_id: str | None = None

    async def fetch(limit: int | None, cursor: str | None) -> tuple[list[ItemCard], str | None]:
        nonlocal query_id
        if image is not None:
            page = await search_by_picture(
                session, image, filters, limit=limit, cursor=cursor, query_id=query_id
            )
            query_id = page.query_id
        else:
            assert item_id is not None
            page = await similar_to_item(session, item_id, filters, limit=limit, cursor=cursor)
        return page.items, page.cursor

    async for card in paginate(fetch, batch=batch, max_items=max_items):
        yield card


async def tag_suggestions(session: Session, item_id: int) -> list[TagSuggestion]:
    """The image model's tag proposals for one of the caller's items."""
    reply = await session.request(GetTagSuggestions(item_id=item_id), TagSuggestions)
    return reply.suggestions
