"""Words find pictures by what they show: a real server with the real model, over TLS.

Proves: an untagged photograph of a cat is found by "cat" (and citrus slices by "fruit"), after
the items whose seller's words match, with what the model saw on its card; private pictures
stay their owner's; pictures stored before their classes were are labelled in the background
when the server starts, as re-embedding does.
"""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack, closing
from dataclasses import replace
from pathlib import Path

import pytest

from backend.config import ServerConfig
from protocol.catalogue_client import browse, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemCard, ItemMetadata, ListingFilters
from tests.support import eventually, running_server
from tests.support.catalogue import account
from tests.unit.vision_fixtures import shared_cache_dir

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


@pytest.fixture
def server_config(
    server_config: ServerConfig, tmp_path_factory: pytest.TempPathFactory
) -> ServerConfig:
    """The image model on, with the converted model shared by the whole test session."""
    return replace(
        server_config, enable_vision=True, model_cache_dir=shared_cache_dir(tmp_path_factory)
    )


async def _list(session: Session, file: str, title: str, **fields: object) -> int:
    metadata = ItemMetadata(title=title, **fields)  # type: ignore[arg-type]
    return (await upload_file(session, DEMO / file, metadata)).item.id


async def _search(session: Session, text: str) -> list[ItemCard]:
    return (await browse(session, ListingFilters(text=text))).items


async def test_untagged_pictures_are_found_by_what_they_show(server_config: ServerConfig) -> None:
    async with running_server(server_config) as server, AsyncExitStack() as stack:
        seller = await account(stack, server, "seller")
        other = await account(stack, server, "other")
        cat = await _list(seller, "chelsea-the-cat.jpg", "IMG 0001")
        citrus = await _list(seller, "citrus-slices.jpg", "IMG 0002")
        mug = await _list(seller, "espresso-cup.jpg", "Cat mug", description="For cat people")
        secret = await _list(other, "honey-bee-on-aster.jpg", "IMG 0003", public=False)

        cards = await _search(seller, "cat")
        # The seller's own words first, then what the model sees.
        assert [card.id for card in cards] == [mug, cat]
        assert cards[0].looks_like is None
        assert cards[1].looks_like in {"Egyptian cat", "tabby", "tiger cat"}
        [fruit] = await _search(seller, "fruit")
        assert (fruit.id, fruit.looks_like) == (citrus, "orange")
        assert await _search(seller, "insect") == []  # the bee is private
        assert [card.id for card in await _search(other, "insects")] == [secret]
        assert (await browse(seller, ListingFilters(text="cat"))).total == 2


@pytest.mark.sqlite_only
async def test_pictures_stored_before_their_classes_are_labelled_in_the_background(
    server_config: ServerConfig,
) -> None:
    async with running_server(server_config) as server, AsyncExitStack() as stack:
        seller = await account(stack, server, "seller")
        cat = await _list(seller, "chelsea-the-cat.jpg", "IMG 0001")
    # As a shop upgraded to this version: embeddings, but no classes yet.
    with closing(sqlite3.connect(server_config.db_path)) as db, db:
        db.execute("DELETE FROM picture_classes")
        db.execute("UPDATE embeddings SET labels_version = 0")

    async with running_server(server_config) as server, AsyncExitStack() as stack:
        seller = await account(stack, server, "seller2")

        async def labelled() -> bool:
            return [card.id for card in await _search(seller, "cat")] == [cat]

        await eventually(labelled, timeout=30)
