"""Provides the client's content-addressed pictures: the store interface and batch resolution.

Cards and item details name their thumbnail and preview by SHA-256 (see
:class:`~protocol.messages.catalogue.PictureMode`); the bytes come inline only when the server
thinks the client lacks them. :func:`resolve_thumbnails` and :func:`resolve_detail` turn a reply
into one where every picture has its bytes again: inline bytes are verified and kept, the rest
is taken from a :class:`PictureStore`, and what the store lacks is fetched for the whole batch in
one :class:`~protocol.messages.catalogue.GetPictures` request. Every byte handed on has been
checked against its hash, whatever it came from (but a :class:`MemoryPictureStore`, which only
ever holds checked bytes); a picture that does not match is fetched once more and then reported
(:class:`PictureMismatch`), never shown.

The store of a session defaults to a :class:`MemoryPictureStore`; a client that keeps pictures
across runs (the TUI's disk cache) installs its own with :func:`use_picture_store`. Its keys are
content hashes, valid for the one server the session talks to: a store shared by sessions to
several servers must keep one namespace per server.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Final, Protocol, runtime_checkable

from protocol.client import Session
from protocol.errors import Conflict
from protocol.messages.catalogue import (
    MAX_PREVIEWS_PER_REQUEST,
    MAX_THUMBNAILS_PER_REQUEST,
    GetPictures,
    ItemCard,
    ItemDetail,
    PictureKind,
    Pictures,
)

#: Bytes a session's default in-memory store keeps: some thousands of thumbnails.
MEMORY_STORE_BYTES: Final = 48 * 1024 * 1024
#: Fetches of a picture whose bytes do not match its hash before giving up on it.
_FETCH_ATTEMPTS: Final = 2


class PictureStore(Protocol):
    """Where a client keeps pictures by content hash (lower-case hex SHA-256 of the bytes).

    Both methods are called on the event loop for every card of every batch, so both must be
    cheap (a dict lookup, or an in-memory index in front of files written in the background).
    The store may forget anything at any time (it is a cache: bounded, least recently used
    first) and may hand back damaged bytes: callers verify every hash before use, and a
    mismatch is dropped and fetched again. (Only :class:`MemoryPictureStore` is trusted: it is
    only ever given checked bytes and never leaves the process.)
    """

    def get(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256``, or ``None``."""
        ...

    def put(self, sha256: str, data: bytes) -> None:
        """Keep ``data``, whose SHA-256 the caller has checked to be ``sha256``."""
        ...


@runtime_checkable
class PrefetchingPictureStore(PictureStore, Protocol):
    """A :class:`PictureStore` that keeps pictures further away too (e.g. on disk).

    Its ``get`` still answers from memory only; the resolvers first await :meth:`prefetch` with
    the hashes a reply named without bytes, so what the store holds further away is found
    without blocking the event loop, and only the rest is asked of the server.
    """

    async def prefetch(self, sha256s: Sequence[str]) -> None:
        """Bring the pictures of ``sha256s`` that the store holds within reach of ``get``."""
        ...


async def _prefetch(store: PictureStore, sha256s: list[str]) -> None:
    if sha256s and isinstance(store, PrefetchingPictureStore):
        await store.prefetch(sha256s)


class MemoryPictureStore:
    """A :class:`PictureStore` in memory, at most ``max_bytes``, least recently used go first."""

    def __init__(self, max_bytes: int = MEMORY_STORE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        # Threads may share a store (the CLI's download workers); each call is short.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256``, marked as used, or ``None``."""
        with self._lock:
            data = self._entries.get(sha256)
            if data is not None:
                self._entries.move_to_end(sha256)
            return data

    def put(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` (a picture larger than the whole budget is not kept)."""
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(sha256, None)
            if old is not None:
                self.bytes -= len(old)
            self._entries[sha256] = data
            self.bytes += len(data)
            while self.bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self.bytes -= len(dropped)


class PictureMismatch(Conflict):
    """A picture's bytes did not match its hash, even when fetched again: it is not shown."""


_stores: weakref.WeakKeyDictionary[Session, PictureStore] = weakref.WeakKeyDictionary()


def picture_store(session: Session) -> PictureStore:
    """The store ``session``'s listings use (a :class:`MemoryPictureStore` until one is set)."""
    store = _stores.get(session)
    if store is None:
        store = _stores[session] = MemoryPictureStore()
    return store


def use_picture_store(session: Session, store: PictureStore) -> None:
    """Make ``session``'s listings, item details and similar strips use ``store``."""
    _stores[session] = store


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _from_store(store: PictureStore, sha256: str) -> bytes | None:
    """The bytes ``store`` keeps under ``sha256`` if they have that hash."""
    data = store.get(sha256)
    if isinstance(store, MemoryPictureStore):
        return data  # only ever given checked bytes: hashing each batch's again costs
    return _checked(data, sha256)


def _checked(data: bytes | None, sha256: str) -> bytes | None:
    """``data`` if its hash is ``sha256`` (anything goes when the server named no hash)."""
    if data is None or (sha256 and sha256_hex(data) != sha256):
        return None
    return data


async def resolve_thumbnails(
    session: Session, cards: Sequence[ItemCard], store: PictureStore | None = None
) -> None:
    """Give every card its thumbnail's bytes, in place, fetching what ``store`` lacks at once.

    Inline thumbnails are verified and kept in the store. A card whose item vanished (or
    became private) before its picture was fetched keeps ``thumbnail=None``.

    Raises:
        PictureMismatch: a thumbnail's bytes did not match its hash twice.
    """
    store = store if store is not None else picture_store(session)
    await _prefetch(
        store,
        [card.thumbnail_sha256 for card in cards if card.thumbnail_sha256 and not card.thumbnail],
    )
    wanted: dict[int, ItemCard] = {}
    for card in cards:
        data = _checked(card.thumbnail, card.thumbnail_sha256)
        if data is not None and card.thumbnail_sha256:
            store.put(card.thumbnail_sha256, data)
        elif data is None and card.thumbnail_sha256:
            data = _from_store(store, card.thumbnail_sha256)
        card.thumbnail = data
        if data is None:
            wanted[card.id] = card
    if wanted:
        expected = {item_id: card.thumbnail_sha256 for item_id, card in wanted.items()}
        fetched = await fetch_pictures(session, expected, PictureKind.THUMBNAIL, store)
        for item_id, data in fetched.items():
            wanted[item_id].thumbnail = data


async def resolve_detail(
    session: Session, detail: ItemDetail, store: PictureStore | None = None
) -> None:
    """Give an item's detail its preview's and thumbnail's bytes, in place (as for cards).

    Raises:
        PictureMismatch: a picture's bytes did not match its hash twice.
    """
    store = store if store is not None else picture_store(session)
    named = [(detail.preview_sha256, detail.preview), (detail.thumbnail_sha256, detail.thumbnail)]
    await _prefetch(store, [sha256 for sha256, inline in named if sha256 and not inline])
    for kind in (PictureKind.PREVIEW, PictureKind.THUMBNAIL):
        sha256 = detail.preview_sha256 if kind is PictureKind.PREVIEW else detail.thumbnail_sha256
        inline = detail.preview if kind is PictureKind.PREVIEW else detail.thumbnail
        data = _checked(inline, sha256)
        if data is not None and sha256:
            store.put(sha256, data)
        elif data is None and sha256:
            data = _from_store(store, sha256)
        if data is None:
            fetched = await fetch_pictures(session, {detail.id: sha256}, kind, store)
            data = fetched.get(detail.id)
        if kind is PictureKind.PREVIEW:
            detail.preview = data
        else:
            detail.thumbnail = data


async def fetch_pictures(
    session: Session,
    expected: dict[int, str],
    kind: PictureKind = PictureKind.THUMBNAIL,
    store: PictureStore | None = None,
) -> dict[int, bytes]:
    """Fetch the pictures of items whose hashes are known, verify them and keep them.

    One request per :data:`~protocol.messages.catalogue.MAX_THUMBNAILS_PER_REQUEST` ids (a
    batch's missing thumbnails take one), plus one for whatever a reply left for later.

    Args:
        expected: Item id to the hash its card named ("" when unknown: anything is taken).

    Returns:
        Item id to the picture's bytes, for the items the server still shows the caller.

    Raises:
        PictureMismatch: a picture's bytes did not match its hash twice.
    """
    store = store if store is not None else picture_store(session)
    got: dict[int, bytes] = {}
    pending = list(expected)
    for _attempt in range(_FETCH_ATTEMPTS):
        damaged: list[int] = []
        for reply in await _request_all(session, pending, kind):
            for picture in reply.pictures:
                sha256 = expected.get(picture.item_id, "") or picture.sha256
                if picture.item_id not in expected or sha256_hex(picture.data) != sha256:
                    damaged.append(picture.item_id)
                    continue
                store.put(sha256, picture.data)
                got[picture.item_id] = picture.data
        pending = [item_id for item_id in damaged if item_id in expected]
        if not pending:
            return got
    raise PictureMismatch(
        f"The {kind.value}s of items {', '.join(map(str, sorted(pending)))} arrived damaged"
    )


async def _request_all(
    session: Session, item_ids: Iterable[int], kind: PictureKind
) -> list[Pictures]:
    """Ask for the pictures of ``item_ids``, as few requests as the limits allow."""
    step = MAX_THUMBNAILS_PER_REQUEST if kind is PictureKind.THUMBNAIL else MAX_PREVIEWS_PER_REQUEST
    queue = list(dict.fromkeys(item_ids))
    replies: list[Pictures] = []
    while queue:
        chunk, queue = queue[:step], queue[step:]
        reply = await session.request(GetPictures(item_ids=chunk, kind=kind), Pictures)
        replies.append(reply)
        # Only ids of this request may come back for later, and at least one was answered or
        # reported missing, so this ends.
        left = [item_id for item_id in reply.more if item_id in chunk]
        if len(left) == len(chunk):
            raise Conflict(f"The server answered none of {len(chunk)} {kind.value}s")
        queue = left + queue
    return replies


__all__: list[str] = [
    "MEMORY_STORE_BYTES",
    "MemoryPictureStore",
    "PictureMismatch",
    "PictureStore",
    "PrefetchingPictureStore",
    "fetch_pictures",
    "picture_store",
    "resolve_detail",
    "resolve_thumbnails",
    "sha256_hex",
    "use_picture_store",
]
