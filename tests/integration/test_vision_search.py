"""Similar-image search end to end: a real server with the real model, over TLS.

Proves: search by picture ranks the matching item first and streams every visible item exactly
once in cursor batches (and survives the server forgetting the query); private items of others
never appear; filters combine with similarity; near-duplicates are named at upload without
blocking it; tag suggestions are offered, never applied; bad pictures are refused; deletions and
visibility changes reach the index; a server without the model says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.catalogue_client import delete_items, edit_item, get_item, upload_file
from protocol.client import Session
from protocol.errors import NotFound, Unavailable, UnsupportedMedia
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from protocol.trust import TrustPolicy
from protocol.vision_client import (
    iter_similar,
    search_by_picture,
    similar_to_item,
    tag_suggestions,
)
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.support.catalogue import vision as vision_service
from tests.unit.vision_fixtures import SAMPLE_NAMES, jpeg_of, shared_cache_dir

PICTURES = SAMPLE_NAMES[:8]


@pytest.fixture
def server_config(
    server_config: ServerConfig, tmp_path_factory: pytest.TempPathFactory
) -> ServerConfig:
    """The image model on, with the converted model shared by the whole test session."""
    return replace(
        server_config, enable_vision=True, model_cache_dir=shared_cache_dir(tmp_path_factory)
    )


async def _upload(
    session: Session, tmp_path: Path, name: str, data: bytes, **fields: object
) -> int:
    path = tmp_path / f"{name}-{len(data)}.jpg"
    path.write_bytes(data)
    metadata = ItemMetadata(title=name.title(), price_cents=500, stock=2, **fields)  # type: ignore[arg-type]
    created = await upload_file(session, path, metadata)
    return created.item.id


async def test_search_by_picture_ranks_the_match_first_and_pages_exactly_once(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    ids = {name: await _upload(seller, tmp_path, name, jpeg_of(name)) for name in PICTURES}
    buyer = await logged_in(make_session, "buyer")

    query = jpeg_of("chelsea", brighten=1.2, quality=50)
    first = await search_by_picture(buyer, query, limit=3)
    assert first.items[0].id == ids["chelsea"]
    assert first.items[0].score is not None and first.items[0].score > 0.8
    assert first.total == len(PICTURES)
    assert first.cursor is not None and first.query_id is not None
    scores = [card.score for card in first.items]
    assert None not in scores
    assert scores == sorted((score for score in scores if score is not None), reverse=True)

    seen = [card.id async for card in iter_similar(buyer, image=query, batch=3)]
    assert sorted(seen) == sorted(ids.values())

    # The server forgets the query (as after a restart): the helper resends the picture.
    vision = vision_service(server)
    vision._queries.clear()
    second = await search_by_picture(
        buyer, query, limit=3, cursor=first.cursor, query_id=first.query_id
    )
    assert [c.id for c in second.items] == seen[3:6]


async def test_private_items_of_others_never_appear(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    secret = await _upload(seller, tmp_path, "chelsea", jpeg_of("chelsea"), public=False)
    shown = await _upload(seller, tmp_path, "coffee", jpeg_of("coffee"))
    other = await logged_in(make_session, "other")

    found = [c.id async for c in iter_similar(other, image=jpeg_of("chelsea"))]
    assert secret not in found and shown in found
    found = [c.id async for c in iter_similar(other, item_id=shown)]
    assert secret not in found
    # The owner sees their private item, first.
    mine = await search_by_picture(seller, jpeg_of("chelsea"))
    assert mine.items[0].id == secret


async def test_filters_combine_with_similarity(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    cat = await _upload(seller, tmp_path, "chelsea", jpeg_of("chelsea"), tags=["animal"])
    await _upload(seller, tmp_path, "coffee", jpeg_of("coffee"), tags=["kitchen"])
    rocket = await _upload(seller, tmp_path, "rocket", jpeg_of("rocket"), tags=["kitchen"])
    buyer = await logged_in(make_session, "buyer")
    batch = await search_by_picture(
        buyer, jpeg_of("chelsea"), ListingFilters(tags=["kitchen"]), limit=10
    )
    assert cat not in [c.id for c in batch.items]
    assert rocket in [c.id for c in batch.items] and batch.total == 2


async def test_similar_to_item_leaves_the_item_out(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    original = await _upload(seller, tmp_path, "coffee", jpeg_of("coffee"))
    copy = await _upload(seller, tmp_path, "coffee", jpeg_of("coffee", brighten=1.2, quality=40))
    await _upload(seller, tmp_path, "rocket", jpeg_of("rocket"))
    batch = await similar_to_item(seller, original)
    assert original not in [c.id for c in batch.items]
    assert batch.items[0].id == copy


async def test_near_duplicates_are_named_but_never_block_the_upload(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    first = await _upload(seller, tmp_path, "astronaut", jpeg_of("astronaut"))
    path = tmp_path / "again.jpg"
    path.write_bytes(jpeg_of("astronaut", quality=60))
    created = await upload_file(seller, path, ItemMetadata(title="Again", price_cents=1))
    assert not created.duplicate
    assert any(f"#{first}" in warning and "similar" in warning for warning in created.warnings)


async def test_tag_suggestions_are_offered_not_applied(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    item = await _upload(seller, tmp_path, "coffee", jpeg_of("coffee"), tags=["drink"])
    suggestions = await tag_suggestions(seller, item)
    tags = [s.tag for s in suggestions]
    assert any("espresso" in tag or "cup" in tag for tag in tags), tags
    assert "drink" not in tags
    assert all(0 < s.score <= 1 for s in suggestions)
    assert (await get_item(seller, item)).tags == ["drink"]
    other = await logged_in(make_session, "other")
    with pytest.raises(NotFound):
        await tag_suggestions(other, item)


async def test_bad_example_pictures_are_refused(make_session: SessionFactory) -> None:
    buyer = await logged_in(make_session, "buyer")
    with pytest.raises(UnsupportedMedia):
        await search_by_picture(buyer, b"not a picture at all")
    with pytest.raises(UnsupportedMedia):
        await search_by_picture(buyer, jpeg_of("coffee")[:200])


async def test_deletion_and_visibility_changes_reach_the_index(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    cat = await _upload(seller, tmp_path, "chelsea", jpeg_of("chelsea"))
    coffee = await _upload(seller, tmp_path, "coffee", jpeg_of("coffee"))
    buyer = await logged_in(make_session, "buyer")
    await edit_item(seller, cat, public=False)
    assert cat not in [c.id async for c in iter_similar(buyer, image=jpeg_of("chelsea"))]
    await delete_items(seller, [coffee])
    batch = await search_by_picture(seller, jpeg_of("coffee"))
    assert coffee not in [c.id for c in batch.items]
    assert batch.total == 1


async def test_without_the_model_searches_say_so(
    tmp_path: Path, server_config: ServerConfig
) -> None:
    config = replace(server_config, enable_vision=False, data_dir=tmp_path / "plain")
    plain = PixmartServer(config)
    await plain.start()
    try:
        session = Session(
            f"wss://127.0.0.1:{plain.port}",
            TrustPolicy(fingerprint=plain.fingerprint),
            backoff=TEST_BACKOFF,
        )
        await session.connect()
        await session.create_account("nomodel", "password123")
        await session.login("nomodel", "password123")
        with pytest.raises(Unavailable, match="without the image model"):
            await search_by_picture(session, jpeg_of("coffee"))
        await session.close()
    finally:
        await plain.stop()


async def test_searches_wait_for_warm_up_and_uploads_made_meanwhile_are_embedded(
    server_config: ServerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the model warms up: hello says so, searches answer unavailable with a retry-after,
    uploads and deletions go through; once ready, the pictures uploaded meanwhile are found."""
    import threading

    from backend.vision import embedder as embedder_module

    release = threading.Event()
    real = embedder_module.Embedder

    def gated(*args: object, **kwargs: object) -> object:
        release.wait(timeout=120)  # the model "builds" until the test lets it
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder_module, "Embedder", gated)
    server = PixmartServer(server_config)
    await server.start()
    try:
        trust = TrustPolicy(fingerprint=server.fingerprint)
        session = Session(f"wss://127.0.0.1:{server.port}", trust, backoff=TEST_BACKOFF)
        await session.connect()
        try:
            assert session.capabilities is not None
            assert session.capabilities.vision == "warming"
            await session.create_account("early", "password123")
            await session.login("early", "password123")
            cat = await _upload(session, tmp_path, "chelsea", jpeg_of("chelsea"))
            gone = await _upload(session, tmp_path, "coffee", jpeg_of("coffee"))
            await delete_items(session, [gone])
            with pytest.raises(Unavailable) as refused:
                await search_by_picture(session, jpeg_of("chelsea"))
            assert refused.value.retry_after is not None and refused.value.retry_after > 0
            assert refused.value.details == {"vision": "warming"}
            with pytest.raises(Unavailable):
                await similar_to_item(session, cat)

            release.set()
            assert await server.vision_ready() == "ready"
            vision = vision_service(server)
            for _ in range(200):  # the catch-up pass embeds what was uploaded meanwhile
                if await vision.index.vector_of(cat) is not None:
                    break
                await asyncio.sleep(0.05)
            found = await search_by_picture(session, jpeg_of("chelsea"))
            assert [card.id for card in found.items] == [cat]
        finally:
            await session.close()
    finally:
        release.set()
        await server.stop()
