"""Provides the request handlers of the catalogue.

Read-only requests are not replayable: answering them again is harmless, and the replay cache
would otherwise hold their large replies (thumbnails, previews, original ranges) for minutes.
Upload chunks are not replayable either: a chunk re-sent after a drop that had already been
stored is answered with ``conflict`` and the offset to continue from, which the client follows;
that keeps megabyte frames out of the replay cache's fingerprinting.
"""

from __future__ import annotations

from backend.catalogue.live import CATALOGUE_TOPIC, item_topic
from backend.catalogue.service import CatalogueService
from backend.connection import Connection
from backend.dispatch import Dispatcher
from backend.events import EventHub
from protocol.messages.base import Ok, Reply
from protocol.messages.catalogue import (
    BeginUpload,
    Browse,
    CancelUpload,
    ChunkAck,
    DeleteItems,
    EditItem,
    FinishUpload,
    GetItem,
    GetOriginal,
    GetPictures,
    ItemInfo,
    ItemsDeleted,
    ItemUpdated,
    ListTags,
    Tags,
    UnwatchCatalogue,
    UnwatchItems,
    UploadChunk,
    WatchCatalogue,
    Watching,
    WatchItems,
)


def register(dispatcher: Dispatcher, catalogue: CatalogueService, events: EventHub) -> None:
    """Register the catalogue's handlers."""

    @dispatcher.route(BeginUpload)
    async def begin_upload(connection: Connection, request: BeginUpload) -> Reply:
        return await catalogue.begin_upload(connection.require_user(), request)

    @dispatcher.route(UploadChunk, replayable=False)
    async def upload_chunk(connection: Connection, request: UploadChunk) -> Reply:
        offset = await catalogue.upload_chunk(connection.require_user(), request)
        return ChunkAck(id=request.id, upload_id=request.upload_id, offset=offset)

    @dispatcher.route(FinishUpload)
    async def finish_upload(connection: Connection, request: FinishUpload) -> Reply:
        return await catalogue.finish_upload(connection.require_user(), request.upload_id)

    @dispatcher.route(CancelUpload)
    async def cancel_upload(connection: Connection, request: CancelUpload) -> Reply:
        await catalogue.cancel_upload(connection.require_user(), request.upload_id)
        return Ok(id=request.id)

    @dispatcher.route(GetItem, replayable=False)
    async def get_item(connection: Connection, request: GetItem) -> Reply:
        item = await catalogue.get_item(
            connection.require_user(), request.item_id, request.pictures, connection.pictures_sent
        )
        return ItemInfo(id=request.id, item=item)

    @dispatcher.route(GetPictures, replayable=False)
    async def get_pictures(connection: Connection, request: GetPictures) -> Reply:
        return await catalogue.get_pictures(
            connection.require_user(), request.item_ids, request.kind, connection.pictures_sent
        )

    @dispatcher.route(GetOriginal, replayable=False)
    async def get_original(connection: Connection, request: GetOriginal) -> Reply:
        return await catalogue.read_original(
            connection.require_user(), request.item_id, request.offset, request.length
        )

    @dispatcher.route(EditItem)
    async def edit_item(connection: Connection, request: EditItem) -> Reply:
        item = await catalogue.edit_item(connection.require_user(), request)
        return ItemUpdated(id=request.id, item=item)

    @dispatcher.route(DeleteItems)
    async def delete_items(connection: Connection, request: DeleteItems) -> Reply:
        results = await catalogue.delete_items(connection.require_user(), request.item_ids)
        return ItemsDeleted(id=request.id, results=results)

    @dispatcher.route(Browse, replayable=False)
    async def browse(connection: Connection, request: Browse) -> Reply:
        return await catalogue.browse(
            connection.require_user().user_id,
            request.filters,
            request.sort,
            limit=request.limit,
            cursor=request.cursor,
            pictures=request.pictures,
            sent=connection.pictures_sent,
        )

    @dispatcher.route(ListTags, replayable=False)
    async def list_tags(connection: Connection, request: ListTags) -> Reply:
        tags = await catalogue.tags(
            connection.require_user().user_id, request.prefix, request.limit
        )
        return Tags(id=request.id, tags=tags)

    @dispatcher.route(WatchCatalogue, replayable=False)
    async def watch_catalogue(connection: Connection, request: WatchCatalogue) -> Reply:
        events.subscribe(connection, CATALOGUE_TOPIC)
        return Ok(id=request.id)

    @dispatcher.route(UnwatchCatalogue, replayable=False)
    async def unwatch_catalogue(connection: Connection, request: UnwatchCatalogue) -> Reply:
        events.unsubscribe(connection, CATALOGUE_TOPIC)
        return Ok(id=request.id)

    @dispatcher.route(WatchItems, replayable=False)
    async def watch_items(connection: Connection, request: WatchItems) -> Reply:
        # Only items the caller may see: a private item's topic would reveal its deletion.
        visible = await catalogue.visible_among(connection.require_user(), request.item_ids)
        for item_id in visible:
            events.subscribe(connection, item_topic(item_id))
        return Watching(id=request.id, item_ids=visible)

    @dispatcher.route(UnwatchItems, replayable=False)
    async def unwatch_items(connection: Connection, request: UnwatchItems) -> Reply:
        for item_id in request.item_ids:
            events.unsubscribe(connection, item_topic(item_id))
        return Ok(id=request.id)
