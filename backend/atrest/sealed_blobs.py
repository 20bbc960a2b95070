"""Provides :class:`SealedBlobs`: the picture store, encrypted, on the disk or in an object store.

It is a :class:`~backend.media.blobs.BlobStorage` like the plain stores, so the catalogue does
not know the difference: callers name blobs by their content's SHA-256, and this layer

* stores the blob of content ``sha256`` under ``HMAC(name key, sha256)``
  (:meth:`~backend.atrest.keyring.StoreKeys.storage_name`), so the names on disk or in the
  bucket say nothing about the pictures, yet identical pictures are still stored once;
* seals every blob (:mod:`backend.atrest.envelope`) with its own data key, bound to that name,
  so a blob copied or swapped under another name fails to open, in segments of
  :data:`BLOB_SEGMENT_BYTES` (blobs sealed before with smaller ones say so in their header and
  open the same way);
* opens only the segments a ranged read touches, keeping a few hundred opened headers (data
  keys) in memory so a download in 4 MiB slices does not re-read and re-unwrap its header;
  the sealed bytes pass through a small reused buffer, a segment at a time, and are
  decrypted straight into the reply's, in the worker thread that read them. Downloads read
  ahead above this layer, the same way for every store (:mod:`backend.media.read_ahead`), so
  decryption is all that differs.

A blob that fails to open is logged once per read and reported as :class:`BlobDamaged`; its
bytes are never returned. While the store still holds pictures from before it was encrypted
(``plaintext_left``), a blob not found under its sealed name is looked up under its old name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final, cast

from backend.atrest.envelope import (
    HEADER_BYTES,
    TAG_BYTES,
    OpenedHeader,
    SealBroken,
    Sealer,
)
from backend.atrest.keyring import StoreKeys
from backend.atrest.keys import WrongKey
from backend.media.blobs import BlobDamaged, ObjectStore
from backend.media.fsutil import TEMP_PREFIX, sha256_of
from backend.media.reply_buffers import REPLY_BUFFER_BYTES, REPLY_BUFFER_SMALLEST, ReplyBuffers

log = logging.getLogger(__name__)

#: Opened headers kept (about 300 bytes each): the originals being downloaded right now.
HEADER_CACHE: Final = 512
#: Plaintext bytes per segment of the blobs this store seals. Downloads read originals in 4 MiB
#: slices, and every segment costs a call, a nonce, its authenticated data and a round trip of
#: the GIL besides its AES-GCM: with the envelope's 64 KiB segments (kept for thumbnails and
#: partial uploads, read whole or in chunks of their own) the reading thread of an encrypted
#: server spent 0.16-0.21 ms per MB more than an unencrypted one's, with 1 MiB 0.07-0.09 (its
#: decryption, about 0.07). A ranged read of a few bytes opens one segment: about 0.1 ms.
BLOB_SEGMENT_BYTES: Final = 1024 * 1024
#: Buffers kept for the sealed bytes of ranged reads, and their size: a segment (a read
#: passes through one, its segments opened while they are still in the CPU's cache), for a few
#: reads at once.
SCRATCH_BUFFERS: Final = 4
SCRATCH_BYTES: Final = BLOB_SEGMENT_BYTES + TAG_BYTES


class ScratchBuffers:
    """A few buffers the sealed bytes of ranged reads are read into and opened from.

    A read would otherwise allocate (and the kernel map in and zero) a fresh buffer for bytes
    that live only until they are decrypted into the reply's own. Used on the event loop only.

    Args:
        keep: Buffers kept at most; more reads at once get buffers of their own.
        size: The size of the buffers kept; larger reads get buffers of their own.
    """

    def __init__(self, keep: int, size: int) -> None:
        self._keep = keep
        self._size = size
        self._free: list[bytearray] = []

    def take(self, size: int) -> memoryview:
        """A buffer of at least ``size`` bytes that nobody else holds."""
        if size > self._size:
            return memoryview(bytearray(size))
        return memoryview(self._free.pop() if self._free else bytearray(self._size))

    def give(self, view: memoryview) -> None:
        """Hand back a buffer :meth:`take` gave, once nothing reads or writes it any more."""
        buffer = view.obj
        if len(view) == self._size and len(self._free) < self._keep:
            assert isinstance(buffer, bytearray)
            self._free.append(buffer)


def blob_context(name: str) -> bytes:
    """What a blob stored as ``name`` is sealed with: its name, so it cannot move."""
    return b"pixmart blob " + name.encode("ascii")


class SealedBlobs:
    """:class:`~backend.media.blobs.BlobStorage` that seals every blob (module docstring).

    Args:
        raw: The store the sealed objects go to (local folder or bucket).
        store_keys: The keys and name key the store's keyring gave (``open_store_keys``).
    """

    def __init__(self, raw: ObjectStore, store_keys: StoreKeys) -> None:
        self.raw = raw
        self.shared = raw.shared
        self.keys = store_keys
        self.sealer = Sealer(store_keys.keys, BLOB_SEGMENT_BYTES)
        #: Whether blobs from before encryption may still be stored under their old names.
        self.plaintext_left = store_keys.keyring.plaintext_left
        self._headers: OrderedDict[str, OpenedHeader] = OrderedDict()
        self._scratch = ScratchBuffers(SCRATCH_BUFFERS, SCRATCH_BYTES)
        self._replies = ReplyBuffers(REPLY_BUFFER_BYTES, REPLY_BUFFER_SMALLEST)

    def describe(self) -> str:
        """Where the blobs are and the key they are sealed under (no secrets)."""
        return f"{self.raw.describe()} (encrypted, master key {self.keys.keys.current.key_id})"

    def storage_name(self, sha256: str) -> str:
        """The keyed-hash name of the blob whose content hashes to ``sha256``."""
        self.raw.storage_name(sha256)  # validates the hash
        return self.keys.storage_name(sha256)

    # -- writing ---------------------------------------------------------------------------

    async def put_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Seal the file at ``path`` into the store and remove it; return its SHA-256.

        Args:
            path: A complete file the server wrote itself, e.g. a finished upload.
            expected_sha256: The file's SHA-256 when the caller has just hashed it and flushed
                it to disk (a finished upload): it is then not read to hash it again.
        """

        def digest() -> str:
            with open(path, "rb") as stream:
                return sha256_of(stream)

        sha256 = await asyncio.to_thread(digest) if expected_sha256 is None else expected_sha256
        name = self.storage_name(sha256)
        if not await self.raw.exists(name):
            sealed = await asyncio.to_thread(self._seal_to_temp_file, path, name)
            try:
                await self.raw.put_named_file(name, sealed)
            finally:
                sealed.unlink(missing_ok=True)
        # Only now: had storing failed, the upload would still be there to try again.
        await asyncio.to_thread(path.unlink, True)
        return sha256

    def _seal_to_temp_file(self, path: Path, name: str) -> Path:
        """Seal ``path`` into a flushed temporary file beside it (same filesystem as the store's
        upload area, so a local store renames it in)."""
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX + "seal-", dir=path.parent)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                for piece in self.sealer.seal_file(source, size, blob_context(name)):
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        # Its folder is not synced: the temporary name need not outlive a crash (the sweep
        # removes what is left), and the store makes the final name durable.
        return temp

    async def put(self, data: bytes) -> str:
        """Seal ``data`` into the store; return its SHA-256."""
        sha256 = hashlib.sha256(data).hexdigest()
        name = self.storage_name(sha256)
        if not await self.raw.exists(name):
            sealed = await asyncio.to_thread(self.sealer.seal, data, blob_context(name))
            await self.raw.put_named(name, sealed)
        return sha256

    # -- reading ---------------------------------------------------------------------------

    async def exists(self, sha256: str) -> bool:
        """Whether the blob is stored (sealed, or still under its old name)."""
        if await self.raw.exists(self.storage_name(sha256)):
            return True
        return self.plaintext_left and await self.raw.exists(sha256)

    async def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked whole.

        Raises:
            FileNotFoundError: The blob is not stored.
            BlobDamaged: It does not open (altered, truncated, moved, or another key's).
        """
        name = self.storage_name(sha256)
        try:
            sealed = await self.raw.read(name)
        except FileNotFoundError:
            if not self.plaintext_left:
                raise
            return await self.raw.read(sha256)
        try:
            return await asyncio.to_thread(self.sealer.open, sealed, blob_context(name))
        except (SealBroken, WrongKey) as exc:
            raise self._damaged(sha256, name, exc) from None

    async def read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        """The blob's size and up to ``length`` bytes from ``offset``, opening only the
        segments they lie in (the bytes are a bytearray, to be sent, not kept).

        One thread hop, as a plain store's read: the sealed bytes pass through a small reused
        buffer and are opened straight into the reply's, in the same worker thread.

        Raises:
            FileNotFoundError: The blob is not stored.
            BlobDamaged: A segment read (or the header) does not open.
        """
        name = self.storage_name(sha256)
        try:
            opened = await self._opened_header(name)
        except FileNotFoundError:
            if not self.plaintext_left:
                raise
            return await self.raw.read_range(sha256, offset, length)
        except (SealBroken, WrongKey) as exc:
            raise self._damaged(sha256, name, exc) from None
        total = opened.header.plaintext_bytes
        span = opened.sealed_span(offset, length)
        if span is None:
            return total, b""
        first, start, stop = span
        try:
            run = opened.segment_run(first, stop - start)
        except SealBroken as exc:
            raise self._damaged(sha256, name, exc) from None
        reply = self._replies.take(run.plain_bytes)
        if reply is not None:
            run = opened.segment_run(first, stop - start, reply)
        del reply  # only the run refers to it: once the reply is let go, it is free again
        # Whole segments at a time, as many as the buffer holds (one of this store's, several
        # of a blob sealed with smaller ones: opened while still in the CPU's cache, rather
        # than after reading the whole slice).
        stride = opened.header.segment_bytes + TAG_BYTES
        chunk = max(1, SCRATCH_BYTES // stride) * stride
        scratch = self._scratch.take(chunk)
        try:
            await self.raw.read_range_through(name, start, stop - start, scratch[:chunk], run.feed)
            data = run.plaintext(offset, length)
        except SealBroken as exc:
            self._headers.pop(name, None)
            raise self._damaged(sha256, name, exc) from None
        # Only now, the thread done with it: a read cancelled meanwhile leaves its buffer to
        # the thread still filling it, and the pool makes another.
        self._scratch.give(scratch)
        # The buffer the segments were opened into goes out as it is, a bytearray: a copy into
        # a bytes object would add a copy per slice to every download, and its one caller only
        # sends it (msgspec encodes a bytearray as the same msgpack bin).
        return total, cast(bytes, data)

    async def _opened_header(self, name: str) -> OpenedHeader:
        opened = self._headers.get(name)
        if opened is not None:
            self._headers.move_to_end(name)
            return opened
        _, head = await self.raw.read_range(name, 0, HEADER_BYTES)
        opened = self.sealer.open_header(head, blob_context(name))
        self._headers[name] = opened
        if len(self._headers) > HEADER_CACHE:
            self._headers.popitem(last=False)
        return opened

    def _damaged(self, sha256: str, name: str, exc: Exception) -> BlobDamaged:
        # One line, no traceback: what failed and where, for the operator to restore it.
        log.error("stored picture %s (object %s) does not open: %s", sha256, name, exc)
        return BlobDamaged(f"stored picture {sha256} is damaged or sealed with another key")

    # -- removal and listing ---------------------------------------------------------------

    async def delete(self, sha256: str) -> bool:
        """Remove the blob (under either name); return whether it existed."""
        name = self.storage_name(sha256)
        self._headers.pop(name, None)
        removed = await self.raw.delete(name)
        if self.plaintext_left:
            removed = await self.raw.delete(sha256) or removed
        return removed

    async def delete_stored(self, name: str) -> bool:
        """Remove the object :meth:`names` listed as ``name``."""
        self._headers.pop(name, None)
        return await self.raw.delete(name)

    def names(self, *, older_than_seconds: float = 0.0) -> AsyncIterator[str]:
        """The stored objects' names (keyed hashes; old names while plaintext is left)."""
        return self.raw.names(older_than_seconds=older_than_seconds)

    async def sweep_temp_files(self, older_than_seconds: float) -> int:
        """Remove what interrupted writes left behind."""
        return await self.raw.sweep_temp_files(older_than_seconds)
