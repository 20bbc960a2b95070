"""Provides :class:`S3Partials`: uploads in progress kept in the object store, shared by a cluster.

Each acknowledged chunk is an object of its own, named by where it starts in the file::

    [PREFIX/]partials/<upload id>/begun                  written by begin (an empty upload)
    [PREFIX/]partials/<upload id>/<offset, 16 digits>    one per chunk

Nothing lives in one instance's memory or disk until the finish, so a client cut off from one
instance resumes on another at the bytes the store holds. The bytes received are the chunks
that follow each other from offset 0 (listed in key order, checked in order). A chunk sent again
at an offset that already holds a chunk of its length (a request retried after a drop, maybe on
another instance) changes nothing; any other offset but the end is refused as on disk.

:meth:`S3Partials.finish` streams the chunks, in order, into one file in this instance's scratch
folder, hashing as it goes, and hands that file on (the pictures are then validated from it and
stored, as with local uploads). The chunk objects stay until the upload is discarded, so a
finish retried after a failure, here or elsewhere, assembles them again. An upload's age is the
newest of its objects' modification times.

With a sealer (pictures encrypted at rest), each chunk object is sealed whole
(:meth:`~backend.atrest.envelope.Sealer.seal`), bound to its upload and offset; sizes in the
listing are then sealed sizes, turned back into the chunks' own by
:func:`~backend.atrest.envelope.plaintext_size`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from backend.atrest.envelope import SealBroken, Sealer, plaintext_size
from backend.atrest.keys import WrongKey
from backend.media.blobs import LIST_PAGE
from backend.media.errors import ChecksumMismatch, OffsetMismatch, TooLarge, UnknownUpload
from backend.media.fsutil import DIR_MODE, FILE_MODE, TEMP_PREFIX, fsync_dir
from backend.media.limits import DEFAULT_MAX_BYTES
from backend.media.s3blobs import open_s3_store, raise_unavailable
from backend.media.uploads import FinishedUpload, is_upload_id

if TYPE_CHECKING:
    from obstore import ObjectMeta

#: The folder of partial uploads, below the store's prefix; never a blob's two-hex-digit folder.
PARTIALS: Final = "partials"
#: The object begin writes, so an upload without chunks yet is known.
BEGUN: Final = "begun"
_DONE: Final = ".done"
_OFFSET_DIGITS: Final = 16
#: The coarsest resolution of an object's modification time among S3 servers (whole seconds).
_TIME_RESOLUTION: Final = 1.0


def upload_folder(upload_id: str) -> str:
    """The key prefix of an upload's objects (no trailing slash).

    Raises:
        UnknownUpload: ``upload_id`` is not an id :meth:`S3Partials.begin` can have made.
    """
    if not is_upload_id(upload_id):
        raise UnknownUpload()
    return f"{PARTIALS}/{upload_id}"


def chunk_key(upload_id: str, offset: int) -> str:
    """The key of the chunk of ``upload_id`` starting at byte ``offset``."""
    return f"{upload_folder(upload_id)}/{offset:0{_OFFSET_DIGITS}d}"


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A stored chunk: where it starts, how long it is, its key."""

    offset: int
    size: int
    key: str


@dataclass(frozen=True, slots=True)
class _Upload:
    """What the store holds of one upload: the chunks that follow each other from offset 0.

    Chunks off that chain (none unless two instances raced on one offset with different
    lengths) are not received bytes; they go when the upload is discarded.
    """

    chain: list[_Chunk]

    @property
    def received(self) -> int:
        """The bytes received: the end of the last chunk of the chain."""
        return self.chain[-1].offset + self.chain[-1].size if self.chain else 0


def chunk_context(upload_id: str, offset: int) -> bytes:
    """What a sealed chunk object is bound to: its upload and where it starts."""
    return f"pixmart upload {upload_id} chunk {offset}".encode("ascii")


def _read_upload(metas: Sequence[ObjectMeta], *, sealed: bool) -> _Upload:
    """The chain of chunks from offset 0 among an upload's listed objects."""
    chunks: dict[int, _Chunk] = {}
    for meta in metas:
        name = meta["path"].rsplit("/", 1)[1]
        if len(name) == _OFFSET_DIGITS and name.isdigit():
            size = meta["size"]
            if sealed:
                try:
                    size = plaintext_size(size)
                except SealBroken:
                    continue  # not a chunk this store sealed: not part of the upload
            chunks[int(name)] = _Chunk(int(name), size, meta["path"])
    chain: list[_Chunk] = []
    end = 0
    # An empty chunk is never stored (refused upstream), so the walk always moves on.
    while end in chunks and chunks[end].size > 0:
        chain.append(chunks.pop(end))
        end = chain[-1].offset + chain[-1].size
    return _Upload(chain)


class S3Partials:
    """:class:`~backend.media.partials.PartialStorage` in an S3-compatible object store.

    Args:
        store: The obstore client, with its bucket and prefix (the pictures' store).
        scratch: This instance's folder where finishes assemble their file.
        max_bytes: The largest upload accepted; chunks going past it are refused.
    """

    shared = True

    def __init__(
        self,
        store: S3Store,
        scratch: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        sealer: Sealer | None = None,
    ) -> None:
        scratch.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._sealer = sealer
        self._store = store
        self._scratch = scratch
        self._max_bytes = max_bytes

    @classmethod
    def from_url(
        cls,
        url: str,
        scratch: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        sealer: Sealer | None = None,
    ) -> S3Partials:
        """Partials beside the pictures of ``s3://BUCKET[/PREFIX]?endpoint=...``.

        Raises:
            ValueError: ``url`` is not a valid object store URL.
        """
        store, _ = open_s3_store(url)
        return cls(store, scratch, max_bytes, sealer)

    async def begin(self) -> str:
        """Write the new upload's marker object; return its id."""
        # 192 random bits: a collision is not worth a conditional write the store may lack.
        upload_id = secrets.token_urlsafe(24)
        try:
            await obstore.put_async(self._store, f"{upload_folder(upload_id)}/{BEGUN}", b"")
        except BaseError as exc:
            raise_unavailable("begin an upload", exc)
        return upload_id

    async def append(self, upload_id: str, offset: int, chunk: bytes) -> int:
        """Store ``chunk`` as the object at ``offset`` if the upload ends there; return the end.

        A chunk of the same length already stored at ``offset`` is not stored again.
        """
        upload = await self._upload(upload_id)
        received = upload.received
        if offset < received and any(
            c.offset == offset and c.size == len(chunk) for c in upload.chain
        ):
            return received  # a retried chunk, already acknowledged once
        if offset != received:
            raise OffsetMismatch(expected=received, got=offset)
        if received + len(chunk) > self._max_bytes:
            await self.discard(upload_id)
            raise TooLarge.file_size(None, self._max_bytes)
        try:
            # Durable when put returns: only then is the chunk acknowledged.
            stored = chunk
            if self._sealer is not None:
                context = chunk_context(upload_id, offset)
                stored = await asyncio.to_thread(self._sealer.seal, chunk, context)
            await obstore.put_async(self._store, chunk_key(upload_id, offset), stored)
        except BaseError as exc:
            raise_unavailable("store an upload chunk", exc)
        return received + len(chunk)

    async def size(self, upload_id: str) -> int:
        """The bytes of the chunks that follow each other from offset 0."""
        return (await self._upload(upload_id)).received

    async def finish(self, upload_id: str, expected_sha256: str | None = None) -> FinishedUpload:
        """Stream the chunks in order into a scratch file, hashing them; flush it."""
        upload = await self._upload(upload_id)
        path = self._scratch / (upload_id + _DONE)
        digest = hashlib.sha256()
        stream = await asyncio.to_thread(_create, path)
        try:
            for chunk in upload.chain:
                try:
                    result = await obstore.get_async(self._store, chunk.key)
                    if self._sealer is not None:
                        sealed = bytes(await result.bytes_async())
                        context = chunk_context(upload_id, chunk.offset)
                        try:
                            data = await asyncio.to_thread(self._sealer.open, sealed, context)
                        except (SealBroken, WrongKey):
                            raise UnknownUpload() from None  # not openable: begin again
                        digest.update(data)
                        await asyncio.to_thread(stream.write, data)
                        continue
                    async for piece in result:
                        data = bytes(piece)
                        digest.update(data)
                        await asyncio.to_thread(stream.write, data)
                except FileNotFoundError:
                    raise UnknownUpload() from None  # discarded meanwhile
                except BaseError as exc:
                    raise_unavailable("read an upload chunk", exc)
            await asyncio.to_thread(_flush, stream)
        except BaseException:
            stream.close()
            path.unlink(missing_ok=True)
            raise
        stream.close()
        await asyncio.to_thread(fsync_dir, self._scratch)
        sha256 = digest.hexdigest()
        if expected_sha256 is not None and expected_sha256.lower() != sha256:
            path.unlink(missing_ok=True)
            raise ChecksumMismatch()
        return FinishedUpload(upload_id=upload_id, path=path, sha256=sha256, size=upload.received)

    async def discard(self, upload_id: str) -> bool:
        """Delete the upload's objects and this instance's scratch file of it."""
        if not is_upload_id(upload_id):
            return False
        scratch = self._scratch / (upload_id + _DONE)
        removed = scratch.is_file()
        scratch.unlink(missing_ok=True)
        keys = await self._keys(upload_folder(upload_id))
        if keys:
            try:
                await obstore.delete_async(self._store, keys)
            except BaseError as exc:
                raise_unavailable("remove an upload", exc)
        return removed or bool(keys)

    async def abandoned(self, older_than_seconds: float) -> AsyncIterator[str]:
        """Yield the ids of uploads whose newest object is ``older_than_seconds`` old.

        Keys come sorted, so an upload's objects are listed together: one page at a time is
        held, never the whole listing.
        """
        cutoff = time.time() - older_than_seconds
        current: str | None = None
        newest = float("-inf")
        try:
            async for page in obstore.list(self._store, PARTIALS, chunk_size=LIST_PAGE):
                for meta in page:
                    parts = meta["path"].split("/")
                    if len(parts) != 3 or not is_upload_id(parts[1]):
                        continue
                    if parts[1] != current:
                        if current is not None and newest <= cutoff:
                            yield current
                        current, newest = parts[1], float("-inf")
                    # Stores keep whole seconds: count an object as written at the end of its
                    # second, so that no upload is ever taken for older than it is.
                    written = meta["last_modified"].timestamp() + _TIME_RESOLUTION
                    newest = max(newest, written)
        except BaseError as exc:
            raise_unavailable("list the uploads", exc)
        if current is not None and newest <= cutoff:
            yield current

    async def rewrap(self) -> int:
        """Write every sealed chunk object again with its data key re-wrapped (objects cannot
        be patched: the PUT replaces each whole, readers see the old or the new one)."""
        if self._sealer is None:
            return 0
        changed = 0
        for key in await self._keys(PARTIALS):
            parts = key.split("/")
            name = parts[-1]
            if len(parts) != 3 or not (len(name) == _OFFSET_DIGITS and name.isdigit()):
                continue
            try:
                result = await obstore.get_async(self._store, key)
                sealed = bytes(await result.bytes_async())
            except FileNotFoundError:
                continue  # discarded meanwhile
            except BaseError as exc:
                raise_unavailable("read an upload chunk", exc)
            try:
                head = self._sealer.rewrap_header(sealed, chunk_context(parts[1], int(name)))
            except (SealBroken, WrongKey):
                continue  # not openable: it can only be discarded
            if head is None:
                continue
            try:
                await obstore.put_async(self._store, key, head + sealed[len(head) :])
            except BaseError as exc:
                raise_unavailable("store an upload chunk", exc)
            changed += 1
        return changed

    async def sweep_scratch(self) -> int:
        """Remove the scratch files of finishes a crash interrupted."""

        def sweep() -> int:
            removed = 0
            # The assembled files, and the temporary ones of pictures being sealed beside them.
            for pattern in ("*" + _DONE, TEMP_PREFIX + "*"):
                for path in self._scratch.glob(pattern):
                    path.unlink(missing_ok=True)
                    removed += 1
            return removed

        return await asyncio.to_thread(sweep)

    async def _upload(self, upload_id: str) -> _Upload:
        """What the store holds of the upload.

        Raises:
            UnknownUpload: nothing (never begun, finished or discarded).
        """
        folder = upload_folder(upload_id)
        try:
            metas = [
                meta
                async for page in obstore.list(self._store, folder, chunk_size=LIST_PAGE)
                for meta in page
            ]
        except BaseError as exc:
            raise_unavailable("look up an upload", exc)
        if not metas:
            raise UnknownUpload()
        return _read_upload(metas, sealed=self._sealer is not None)

    async def _keys(self, folder: str) -> list[str]:
        try:
            return [
                meta["path"]
                async for page in obstore.list(self._store, folder, chunk_size=LIST_PAGE)
                for meta in page
            ]
        except BaseError as exc:
            raise_unavailable("look up an upload", exc)


def _create(path: Path) -> IO[bytes]:
    """A new file at ``path``, 0600, replacing one a previous finish left."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, FILE_MODE)
    return os.fdopen(fd, "wb")


def _flush(stream: IO[bytes]) -> None:
    stream.flush()
    os.fsync(stream.fileno())
