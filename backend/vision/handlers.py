"""Provides the request handlers for similar-image search and tag suggestions."""

from __future__ import annotations

from backend.connection import Connection
from backend.dispatch import Dispatcher
from backend.vision.service import VisionService
from protocol.errors import Unavailable
from protocol.messages.base import Reply
from protocol.messages.vision import (
    GetTagSuggestions,
    SearchByImage,
    SimilarToItem,
    TagSuggestions,
)

_NO_MODEL = "This server runs without the image model, so it cannot compare pictures"


def register(dispatcher: Dispatcher, service: VisionService | None) -> None:
    """Register the vision handlers; without a service they answer ``unavailable``.

    Searches are read-only and may carry megabytes, so they are not kept in the replay cache:
    a retried search is simply run again.
    """

    def require() -> VisionService:
        if service is None:
            raise Unavailable(_NO_MODEL)
        return service

    @dispatcher.route(SearchByImage, replayable=False)
    async def search_by_image(connection: Connection, request: SearchByImage) -> Reply:
        batch = await require().search_by_image(
            connection.require_user(),
            image=request.image,
            query_id=request.query_id,
            filters=request.filters,
            limit=request.limit,
            cursor=request.cursor,
            pictures=request.pictures,
            sent=connection.pictures_sent,
        )
        batch.id = request.id
        return batch

    @dispatcher.route(SimilarToItem, replayable=False)
    async def similar_to_item(connection: Connection, request: SimilarToItem) -> Reply:
        batch = await require().similar_to_item(
            connection.require_user(),
            request.item_id,
            request.filters,
            request.limit,
            request.cursor,
            pictures=request.pictures,
            sent=connection.pictures_sent,
        )
        batch.id = request.id
        return batch

    @dispatcher.route(GetTagSuggestions, replayable=False)
    async def tag_suggestions(connection: Connection, request: GetTagSuggestions) -> Reply:
        suggestions = await require().tag_suggestions(connection.require_user(), request.item_id)
        return TagSuggestions(id=request.id, item_id=request.item_id, suggestions=suggestions)
