"""Content-addressed pictures: the client's resolution and stores, the server's bounded records.

The client side runs against a fake session (bytes in, replies out); the integration tests in
``tests/integration/test_catalogue_pictures.py`` run the same paths against a real server.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from backend.atrest import derivatives as module
from backend.atrest.derivatives import DerivativeCodec
from backend.atrest.envelope import Sealer
from backend.atrest.keys import KeySet, MasterKey
from backend.sent_pictures import SentPictures
from protocol import codec
from protocol.client import Session
from protocol.errors import Internal
from protocol.messages.base import Request
from protocol.messages.catalogue import (
    GetPictures,
    ItemBatch,
    ItemCard,
    Picture,
    PictureKind,
    Pictures,
)
from protocol.pictures import (
    MemoryPictureStore,
    PictureMismatch,
    resolve_thumbnails,
    use_picture_store,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def card(item_id: int, picture: bytes, *, inline: bool) -> ItemCard:
    return ItemCard(
        id=item_id,
        title=f"Item {item_id}",
        price_cents=100,
        stock=1,
        public=True,
        owner_id=1,
        owner_name="alice",
        tags=[],
        width=10,
        height=10,
        created_at=0.0,
        thumbnail=picture if inline else None,
        thumbnail_sha256=sha(picture),
        thumbnail_size=len(picture),
    )


class FakeServer:
    """Answers GetPictures from ``pictures``, damaged ``damage`` times per item first."""

    def __init__(self, pictures: dict[int, bytes], damage: int = 0) -> None:
        self.pictures = pictures
        self.damage = {item_id: damage for item_id in pictures}
        self.requests: list[GetPictures] = []

    async def request(self, request: Request, expect: type[Any], **_: Any) -> Any:
        assert isinstance(request, GetPictures) and expect is Pictures
        # Through the codec, as on the wire.
        request = codec.decode_as(codec.encode(request), GetPictures)
        self.requests.append(request)
        answered: list[Picture] = []
        for item_id in request.item_ids:
            data = self.pictures[item_id]
            if self.damage[item_id] > 0:
                self.damage[item_id] -= 1
                data = data[:-1] + bytes([data[-1] ^ 1])
            answered.append(Picture(item_id=item_id, sha256=sha(self.pictures[item_id]), data=data))
        return codec.decode_as(codec.encode(Pictures(id=1, pictures=answered)), Pictures)


class FileLikeStore:
    """A store that is not trusted (as a disk cache is not): what it holds may be damaged."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def get(self, sha256: str) -> bytes | None:
        return self.entries.get(sha256)

    def put(self, sha256: str, data: bytes) -> None:
        self.entries[sha256] = data


def fake_session(server: FakeServer) -> Session:
    return server  # type: ignore[return-value]


async def test_inline_pictures_are_kept_and_missing_ones_fetched_in_one_request() -> None:
    pictures = {n: os.urandom(300 + n) for n in range(1, 25)}
    server = FakeServer(pictures)
    store = MemoryPictureStore()
    store.put(sha(pictures[3]), pictures[3])
    cards = [card(n, data, inline=n <= 2) for n, data in pictures.items()]
    await resolve_thumbnails(fake_session(server), cards, store)
    assert [c.thumbnail for c in cards] == list(pictures.values())
    assert [r.item_ids for r in server.requests] == [list(range(4, 25))]
    assert len(store) == 24


async def test_bytes_that_do_not_match_their_hash_are_never_shown() -> None:
    good, other = os.urandom(400), os.urandom(400)
    server = FakeServer({1: good, 2: other}, damage=1)
    store = FileLikeStore()
    store.put(sha(other), good)  # a damaged entry (a disk cache's file, say)
    lying = card(1, good, inline=True)
    lying.thumbnail = other  # inline bytes of another picture
    cards = [lying, card(2, other, inline=False)]
    await resolve_thumbnails(fake_session(server), cards, store)
    # Both refetched, the first answers damaged, the second time right.
    assert [c.thumbnail for c in cards] == [good, other]
    assert len(server.requests) == 2 and store.get(sha(other)) == other


async def test_a_picture_damaged_every_time_is_a_typed_error() -> None:
    picture = os.urandom(400)
    server = FakeServer({7: picture}, damage=5)
    with pytest.raises(PictureMismatch):
        await resolve_thumbnails(
            fake_session(server), [card(7, picture, inline=False)], MemoryPictureStore()
        )


async def test_a_session_uses_the_store_it_is_given() -> None:
    picture = os.urandom(100)
    server = FakeServer({1: picture})
    session = fake_session(server)
    mine = MemoryPictureStore()
    mine.put(sha(picture), picture)
    use_picture_store(session, mine)
    cards = [card(1, picture, inline=False)]
    await resolve_thumbnails(session, cards)
    assert cards[0].thumbnail == picture and server.requests == []


def test_the_memory_store_is_bounded_least_recently_used_first() -> None:
    store = MemoryPictureStore(max_bytes=1000)
    for n in range(5):
        store.put(str(n), bytes(300))
        store.get("0")  # kept in use
    assert store.bytes <= 1000 and store.get("0") is not None and store.get("1") is None
    store.put("huge", bytes(1001))
    assert store.get("huge") is None


def test_old_clients_still_decode_cards_with_their_thumbnails() -> None:
    picture = os.urandom(50)
    frame = codec.encode(ItemBatch(id=1, items=[card(1, picture, inline=True)]))
    decoded = codec.decode_as(frame, ItemBatch)
    assert decoded.items[0].thumbnail == picture
    assert PictureKind("preview") is PictureKind.PREVIEW


def test_a_connection_remembers_a_bounded_number_of_pictures() -> None:
    sent = SentPictures(limit=3)
    for name in "abcd":
        sent.add(name)
    sent.add("b")  # refreshed
    sent.add("e")
    assert len(sent) == 3 and "a" not in sent and "c" not in sent and "b" in sent


def test_the_server_caches_opened_derivatives_by_hash() -> None:
    derivatives = DerivativeCodec(Sealer(KeySet(MasterKey.from_bytes(os.urandom(32)))))
    thumbnail = os.urandom(2000)
    sealed = derivatives.seal(thumbnail, "thumbnail")
    assert derivatives.cached("thumbnail", sha(thumbnail)) is None
    with pytest.raises(Internal):  # sealed as a thumbnail: never opens as a preview
        derivatives.open_known(sealed, "preview", sha(thumbnail))
    with pytest.raises(Internal):  # damaged
        derivatives.open_known(sealed[:-1] + bytes([sealed[-1] ^ 1]), "thumbnail", sha(b"x"))
    assert derivatives.cached("thumbnail", sha(b"x")) is None
    assert derivatives.open_known(sealed, "thumbnail", sha(thumbnail)) == thumbnail
    assert derivatives.cached("thumbnail", sha(thumbnail)) == thumbnail
    assert derivatives.cached("preview", sha(thumbnail)) is None  # kinds kept apart


def test_the_servers_cache_of_opened_derivatives_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(module, "OPENED_BYTES", 64 * 1024)
    codec_ = module.DerivativeCodec()
    pictures = [os.urandom(4000) for _ in range(40)]
    for picture in pictures:
        codec_.open_known(picture, "thumbnail", sha(picture))
    kept = [p for p in pictures if codec_.cached("thumbnail", sha(p)) is not None]
    assert 0 < len(kept) < len(pictures) and sum(map(len, kept)) <= 64 * 1024
    assert kept == pictures[-len(kept) :]  # the least recently used went first
