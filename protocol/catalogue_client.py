"""Provides the client side of the catalogue on top of :class:`~protocol.client.Session`.

Functions taking a session: resumable uploads (:func:`upload_file`), listings
(:func:`browse`, :func:`iter_items`), one item (:func:`get_item`, :func:`download_original`),
edits and deletes, tags and live updates (:class:`CatalogueWatch`). Money is in
:mod:`protocol.money`.

Listings and items come with every picture's bytes, as before; underneath, pictures the session's
:class:`~protocol.pictures.PictureStore` holds are not sent again (see :mod:`protocol.pictures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Final

from protocol.client import ConnectionState, ConnectionStatus, Session
from protocol.errors import Conflict, NotFound, PixmartError
from protocol.messages.base import Ok
from protocol.messages.catalogue import (
    BeginUpload,
    Browse,
    ChunkAck,
    DeleteItems,
    DeleteResult,
    EditItem,
    FinishUpload,
    GetItem,
    GetOriginal,
    ItemBatch,
    ItemCard,
    ItemCreated,
    ItemDetail,
    ItemInfo,
    ItemMetadata,
    ItemsDeleted,
    ItemUpdated,
    ListingFilters,
    ListTags,
    OriginalData,
    PictureMode,
    SortOrder,
    TagCount,
    Tags,
    UploadChunk,
    UploadState,
    WatchCatalogue,
    Watching,
    WatchItems,
)
from protocol.paging import paginate
from protocol.pictures import PictureStore, resolve_detail, resolve_thumbnails

#: Called with (bytes the server holds, file size) as an upload advances.
Progress = Callable[[int, int], None]

#: How often one upload starts over after its server-side state vanished (expired) or moved.
_MAX_RESTARTS: Final = 3
#: Offset corrections in a row before giving up (each means the server holds other bytes).
_MAX_RESYNCS: Final = 8
_HASH_BLOCK: Final = 1024 * 1024
#: Ids per watch request (the protocol's maximum).
_WATCH_BATCH: Final = 1000


# -- uploads -------------------------------------------------------------------------------


def sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks (blocking: call it in a thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _read_block(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as stream:
        stream.seek(offset)
        return stream.read(size)


async def upload_file(
    session: Session,
    path: Path,
    metadata: ItemMetadata,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
) -> ItemCreated:
    """Upload one picture and list it, resuming wherever the server's copy stands.

    A drop in the middle is survived by the session (unanswered requests are re-sent); a new
    run of the same upload (same user, same file) continues from the last byte the server
    acknowledged, as does this call after the server lost or expired its copy.

    Args:
        path: The file; it must not change while it is uploaded.
        metadata: The item's listing.
        sha256: The file's hash if already known (it is computed in a thread otherwise).
        progress: Told how many bytes the server holds after each acknowledgement.

    Returns:
        The new item, or the caller's existing item with this picture (``duplicate``).

    Raises:
        PixmartError: refused (``unsupported_media``, ``too_large``, ``bad_request`` ...).
    """
    size = await asyncio.to_thread(lambda: path.stat().st_size)
    digest: str = sha256 if sha256 is not None else await asyncio.to_thread(sha256_of_file, path)
    for attempt in range(_MAX_RESTARTS):
        state = await session.request(
            BeginUpload(sha256=digest, size=size, metadata=metadata), UploadState
        )
        if state.existing is not None:
            if progress is not None:
                progress(size, size)
            return ItemCreated(id=state.id, item=state.existing, duplicate=True)
        try:
            await _send_from(session, path, state, progress)
            return await session.request(FinishUpload(upload_id=state.upload_id), ItemCreated)
        except NotFound:
            # The server's copy expired or vanished meanwhile: begin again (it may be partial).
            if attempt == _MAX_RESTARTS - 1:
                raise
        except PixmartError as exc:
            # Finishing too early (bytes lost in a server crash) names where to resume.
            if not _resume_offset(exc) or attempt == _MAX_RESTARTS - 1:
                raise
    raise AssertionError("unreachable")


async def _send_from(
    session: Session, path: Path, state: UploadState, progress: Progress | None
) -> None:
    offset, size, chunk = state.offset, state.size, max(1, state.chunk_bytes)
    resyncs = 0
    while offset < size:
        if progress is not None:
            progress(offset, size)
        data = await asyncio.to_thread(_read_block, path, offset, min(chunk, size - offset))
        if not data:
            raise ValueError(f"{path} became shorter while it was uploaded")
        try:
            ack = await session.request(
                UploadChunk(upload_id=state.upload_id, offset=offset, data=data), ChunkAck
            )
        except Conflict as exc:
            # Usually a chunk re-sent after a drop that the server had stored already.
            expected = _resume_offset(exc)
            resyncs += 1
            if expected is None or resyncs > _MAX_RESYNCS:
                raise
            offset = expected
            continue
        resyncs = 0
        offset = ack.offset
    if progress is not None:
        progress(offset, size)


def _resume_offset(exc: PixmartError) -> int | None:
    value = (exc.details or {}).get("offset")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- listings and items --------------------------------------------------------------------


async def browse(
    session: Session,
    filters: ListingFilters | None = None,
    sort: SortOrder = SortOrder.NEWEST,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    pictures: PictureMode = PictureMode.UNSENT,
    store: PictureStore | None = None,
) -> ItemBatch:
    """One batch of a listing; pass the previous batch's cursor (same filters) for the next.

    Every card has its thumbnail's bytes (``None`` only for an item gone meanwhile).

    Args:
        pictures: How the server sends thumbnails: :attr:`PictureMode.HASHES` when ``store``
            is likely to hold them (a warm disk cache), else the default.
        store: Where thumbnails are kept; the session's (:func:`~protocol.pictures.picture_store`)
            by default.

    Raises:
        PictureMismatch: a thumbnail arrived damaged twice.
    """
    request = Browse(
        filters=filters or ListingFilters(),
        sort=sort,
        limit=limit,
        cursor=cursor,
        pictures=pictures,
    )
    batch = await session.request(request, ItemBatch)
    await resolve_thumbnails(session, batch.items, store)
    return batch


async def iter_items(
    session: Session,
    filters: ListingFilters | None = None,
    sort: SortOrder = SortOrder.NEWEST,
    *,
    batch: int | None = None,
    max_items: int | None = None,
) -> AsyncIterator[ItemCard]:
    """Yield the items of a listing, asking for each next batch only when it is needed."""

    async def fetch(limit: int | None, cursor: str | None) -> tuple[list[ItemCard], str | None]:
        page = await browse(session, filters, sort, limit=limit, cursor=cursor)
        return page.items, page.cursor

    async for card in paginate(fetch, batch=batch, max_items=max_items):
        yield card


async def get_item(
    session: Session,
    item_id: int,
    *,
    pictures: PictureMode = PictureMode.UNSENT,
    store: PictureStore | None = None,
) -> ItemDetail:
    """One item with its preview's and thumbnail's bytes (see :func:`browse` for the options).

    Raises:
        PictureMismatch: a picture arrived damaged twice.
    """
    detail = (await session.request(GetItem(item_id=item_id, pictures=pictures), ItemInfo)).item
    await resolve_detail(session, detail, store)
    return detail


async def download_original(session: Session, item_id: int) -> tuple[bytes, OriginalData]:
    """The whole original (metadata-stripped unless the caller owns the item), range by range.

    Returns:
        The bytes and the last range's reply (format, sha256, whether stripped).

    Raises:
        PixmartError: the file changed meanwhile or does not match its hash (``conflict``).
    """
    parts: list[bytes] = []
    offset = 0
    first_sha = ""
    while True:
        reply = await session.request(GetOriginal(item_id=item_id, offset=offset), OriginalData)
        if first_sha and reply.sha256 != first_sha:
            raise Conflict("The picture changed while it was downloaded; try again")
        first_sha = reply.sha256
        parts.append(reply.data)
        offset += len(reply.data)
        if offset >= reply.total or not reply.data:
            break
    data = b"".join(parts)
    # Up to the upload limit (50 MiB): hashed in a thread, off the caller's event loop.
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    if digest != reply.sha256:
        raise Conflict("The downloaded picture does not match its checksum; try again")
    return data, reply


async def edit_item(
    session: Session,
    item_id: int,
    *,
    title: str | None = None,
    description: str | None = None,
    price_cents: int | None = None,
    stock: int | None = None,
    tags: Sequence[str] | None = None,
    public: bool | None = None,
) -> ItemCard:
    """Change an item's listing; arguments left ``None`` are kept."""
    request = EditItem(
        item_id=item_id,
        title=title,
        description=description,
        price_cents=price_cents,
        stock=stock,
        tags=list(tags) if tags is not None else None,
        public=public,
    )
    return (await session.request(request, ItemUpdated)).item


async def delete_items(session: Session, item_ids: Sequence[int]) -> list[DeleteResult]:
    """Delete items; one result per id, in order."""
    return (await session.request(DeleteItems(item_ids=list(item_ids)), ItemsDeleted)).results


async def list_tags(session: Session, prefix: str = "", limit: int = 100) -> list[TagCount]:
    """Tags starting with ``prefix``, with the number of visible items carrying each."""
    return (await session.request(ListTags(prefix=prefix, limit=limit), Tags)).tags


# -- live updates --------------------------------------------------------------------------


class CatalogueWatch:
    """Keeps catalogue and item subscriptions alive across reconnects.

    The server forgets a connection's subscriptions when the link drops; this re-sends them
    each time the session is connected again. Events arrive through ``session.on_event``.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self.catalogue = False
        self.item_ids: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._was_connected = session.connected
        session.on_status(self._on_status)

    async def watch_catalogue(self) -> None:
        """Subscribe to every item added, changed or removed."""
        await self._session.request(WatchCatalogue(), Ok)
        self.catalogue = True

    async def watch_items(self, item_ids: Sequence[int]) -> list[int]:
        """Subscribe to these items; returns the ids the server agreed to (visible ones)."""
        if not item_ids:
            return []
        reply = await self._session.request(WatchItems(item_ids=list(item_ids)), Watching)
        self.item_ids.update(reply.item_ids)
        return reply.item_ids

    def _on_status(self, status: ConnectionStatus) -> None:
        connected = status.state is ConnectionState.CONNECTED
        if connected and not self._was_connected:
            task = asyncio.get_running_loop().create_task(self._resubscribe())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._was_connected = connected

    async def _resubscribe(self) -> None:
        # Best effort: if the link drops again, the next reconnect tries again.
        with contextlib.suppress(PixmartError):
            if self.catalogue:
                await self._session.request(WatchCatalogue(), Ok)
            ids = sorted(self.item_ids)
            for start in range(0, len(ids), _WATCH_BATCH):
                batch = ids[start : start + _WATCH_BATCH]
                await self._session.request(WatchItems(item_ids=batch), Watching)


__all__: list[str] = [
    "CatalogueWatch",
    "Progress",
    "browse",
    "delete_items",
    "download_original",
    "edit_item",
    "get_item",
    "iter_items",
    "list_tags",
    "sha256_of_file",
    "upload_file",
]
