"""Pictures addressed by content: inline for a cold connection, by hash once sent, fetched by id.

Runs on both engines (the PostgreSQL pass sets ``PIXMART_TEST_ENGINE=postgres``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from backend.server import PixmartServer
from protocol.catalogue_client import browse, edit_item, get_item
from protocol.client import Session
from protocol.errors import BadRequest, NotFound
from protocol.messages.base import Reply, Request
from protocol.messages.catalogue import (
    Browse,
    GetItem,
    GetPictures,
    ItemBatch,
    ItemCard,
    ItemInfo,
    PictureKind,
    PictureMode,
    Pictures,
)
from protocol.pictures import MemoryPictureStore
from tests.conftest import SessionFactory, logged_in
from tests.support.catalogue import catalogue, jpeg, upload

_seeds = iter(range(5000, 10**6))


def sha(data: bytes | None) -> str:
    assert data is not None
    return hashlib.sha256(data).hexdigest()


async def add(session: Session, tmp_path: Path, **fields: Any) -> ItemCard:
    """Upload a fresh picture as an item and return its card."""
    data = jpeg(next(_seeds), (48, 32))
    return (await upload(session, tmp_path, data, "Item", **fields)).item


class Requests:
    """Counts the requests a session sends, by type."""

    def __init__(self, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        original = session.request

        async def counted(request: Request, expect: type[Any], **kwargs: Any) -> Any:
            self.sent.append(type(request).__name__)
            return await original(request, expect, **kwargs)

        monkeypatch.setattr(session, "request", counted)


@pytest.fixture
async def shop(make_session: SessionFactory, tmp_path: Path) -> tuple[Session, Session, list[int]]:
    """Alice with four public items and one private one (the last id); Bob, a buyer."""
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    ids = [(await add(alice, tmp_path)).id for _ in range(4)]
    ids.append((await add(alice, tmp_path, public=False)).id)
    return alice, bob, ids


async def test_a_cold_connection_gets_pictures_inline_then_by_hash_only(
    shop: tuple[Session, Session, list[int]],
) -> None:
    _, bob, _ = shop
    first = await bob.request(Browse(pictures=PictureMode.UNSENT), ItemBatch)
    assert len(first.items) == 4
    for card in first.items:
        assert card.thumbnail is not None and card.thumbnail.startswith(b"RIFF")
        assert (card.thumbnail_sha256, card.thumbnail_size) == (
            sha(card.thumbnail),
            len(card.thumbnail),
        )
    again = await bob.request(Browse(pictures=PictureMode.UNSENT), ItemBatch)
    assert [card.thumbnail for card in again.items] == [None] * 4
    assert [c.thumbnail_sha256 for c in again.items] == [c.thumbnail_sha256 for c in first.items]
    # Clients before content addressing ask for nothing and get every picture, as before.
    old = await bob.request(Browse(), ItemBatch)
    assert [card.thumbnail for card in old.items] == [card.thumbnail for card in first.items]
    hashes = await bob.request(Browse(pictures=PictureMode.HASHES), ItemBatch)
    assert all(card.thumbnail is None and card.thumbnail_size for card in hashes.items)


async def test_a_warm_client_fetches_only_what_its_store_lacks_in_one_request(
    shop: tuple[Session, Session, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bob, _ = shop
    store = MemoryPictureStore()
    cold = await browse(bob, limit=2, store=store)
    assert len(store) == 2
    requests = Requests(bob, monkeypatch)
    batch = await browse(bob, pictures=PictureMode.HASHES, store=store)
    assert requests.sent == ["Browse", "GetPictures"]  # the two it lacked, in one request
    assert all(sha(card.thumbnail) == card.thumbnail_sha256 for card in batch.items)
    assert [card.thumbnail for card in batch.items[:2]] == [c.thumbnail for c in cold.items]
    assert len(store) == 4
    requests.sent.clear()
    await browse(bob, pictures=PictureMode.HASHES, store=store)
    assert requests.sent == ["Browse"]  # everything was in the store


async def test_the_item_screen_gets_its_preview_once_per_connection(
    shop: tuple[Session, Session, list[int]],
) -> None:
    _, bob, ids = shop
    first = (await bob.request(GetItem(item_id=ids[0], pictures=PictureMode.UNSENT), ItemInfo)).item
    assert first.preview is not None and sha(first.preview) == first.preview_sha256
    assert first.preview_size == len(first.preview)
    again = (await bob.request(GetItem(item_id=ids[0], pictures=PictureMode.UNSENT), ItemInfo)).item
    assert (again.preview, again.thumbnail, again.preview_sha256) == (
        None,
        None,
        first.preview_sha256,
    )
    # The client helper fills both in from the session's store, or fetches them.
    detail = await get_item(bob, ids[0])
    assert detail.preview == first.preview and detail.thumbnail is not None
    fresh = MemoryPictureStore()
    detail = await get_item(bob, ids[0], pictures=PictureMode.HASHES, store=fresh)
    assert detail.preview == first.preview and len(fresh) == 2


async def test_a_private_picture_is_fetched_by_nobody_but_who_may_see_the_item(
    shop: tuple[Session, Session, list[int]],
) -> None:
    alice, bob, ids = shop
    private = ids[-1]
    for kind in PictureKind:
        reply = await bob.request(GetPictures(item_ids=[private, ids[0]], kind=kind), Pictures)
        assert [p.item_id for p in reply.pictures] == [ids[0]] and reply.missing == [private]
        own = await alice.request(GetPictures(item_ids=[private], kind=kind), Pictures)
        assert [p.item_id for p in own.pictures] == [private]
        assert sha(own.pictures[0].data) == own.pictures[0].sha256
    with pytest.raises(NotFound):
        await bob.request(GetItem(item_id=private, pictures=PictureMode.HASHES), ItemInfo)
    # Made private after Bob was sent its picture: its id no longer opens it.
    seen = await bob.request(GetPictures(item_ids=[ids[1]]), Pictures)
    assert seen.pictures
    await edit_item(alice, ids[1], public=False)
    reply = await bob.request(GetPictures(item_ids=[ids[1]]), Pictures)
    assert (reply.pictures, reply.missing) == ([], [ids[1]])


async def test_a_reply_full_of_previews_leaves_the_rest_for_another_request(
    server: PixmartServer, shop: tuple[Session, Session, list[int]]
) -> None:
    _, bob, ids = shop
    catalogue(server).card_pictures.reply_bytes = 1  # every preview is larger
    reply = await bob.request(GetPictures(item_ids=ids[:3], kind=PictureKind.PREVIEW), Pictures)
    assert [p.item_id for p in reply.pictures] == ids[:1] and reply.more == ids[1:3]
    detail = await get_item(bob, ids[2], pictures=PictureMode.HASHES, store=MemoryPictureStore())
    assert detail.preview is not None


async def test_rows_without_recorded_hashes_get_them_when_first_read(
    server: PixmartServer, shop: tuple[Session, Session, list[int]]
) -> None:
    _, bob, _ = shop
    known = {c.id: c.thumbnail_sha256 for c in (await bob.request(Browse(), ItemBatch)).items}
    await server.db.execute("UPDATE pictures SET thumbnail_sha256 = NULL, thumbnail_size = NULL")
    # Rows as an older server left them, written behind this one's back: its cache of listing
    # batches (which announces nothing) must be emptied as a restart would.
    assert server.domains is not None
    cache = server.domains.catalogue.service.listings.cache
    assert cache is not None
    cache.invalidate()
    batch = await bob.request(Browse(pictures=PictureMode.HASHES), ItemBatch)
    assert {card.id: card.thumbnail_sha256 for card in batch.items} == known
    assert all(card.thumbnail is None for card in batch.items)
    row = await server.db.fetchone(
        "SELECT COUNT(*) FROM pictures WHERE thumbnail_sha256 IS NULL OR thumbnail_size IS NULL"
    )
    assert row is not None and row[0] == 1  # the private item's, which Bob's browse never read


async def test_bad_requests_for_pictures_are_refused(
    shop: tuple[Session, Session, list[int]],
) -> None:
    _, bob, ids = shop
    with pytest.raises(BadRequest):
        await bob.request(GetPictures(item_ids=ids * 2, kind=PictureKind.PREVIEW), Pictures)
    reply: Reply = await bob.request(GetPictures(item_ids=[ids[0], ids[0], 10**9]), Pictures)
    assert isinstance(reply, Pictures)
    assert [p.item_id for p in reply.pictures] == [ids[0]] and reply.missing == [10**9]
