"""Provides the interface of picture storage, and its implementation on the local disk.

Pictures are content-addressed blobs (see :mod:`backend.media.blobstore` for the naming): a blob
is named by the SHA-256 of its bytes, written once and never changed. :class:`BlobStorage` is
what the catalogue needs of a store; two implementations exist:

* :class:`LocalBlobs`: the data dir's ``blobs`` folder (:class:`~backend.media.blobstore.BlobStore`,
  run in threads), for a single server;
* :class:`~backend.media.s3blobs.S3Blobs`: an S3-compatible object store shared by every
  instance of a cluster (``--blobs s3://...``).

Writes return only once the blob is durable, so a row naming it may commit. A store that cannot
be reached raises :class:`StoreUnavailable` (after the client's own retries); callers turn it
into the protocol's ``unavailable`` and keep what they were given, to be retried.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final, Protocol, cast

from backend.media.blobstore import BlobStore
from backend.media.reply_buffers import REPLY_BUFFER_BYTES, REPLY_BUFFER_SMALLEST, ReplyBuffers

#: Names listed per round trip (a thread hop here, a LIST request in S3).
LIST_PAGE: Final = 1000


class StoreUnavailable(Exception):
    """The picture store cannot be reached now; the request may be retried later.

    Args:
        message: What failed, for the log (never credentials).
        retry_after: Seconds after which a retry is worth trying.
    """

    def __init__(self, message: str, *, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BlobDamaged(Exception):
    """A stored blob does not open: altered, truncated, moved, or sealed with another key.

    Its bytes are never returned; the store logged what failed (once), callers answer
    ``internal``.
    """


class BlobStorage(Protocol):
    """Content-addressed, write-once storage of pictures' files.

    Every method taking a name raises :class:`ValueError` for a name that is not 64 lowercase
    hex digits, and :class:`StoreUnavailable` when the store cannot be reached.
    """

    #: Whether other servers write to the same store: the sweep must then spare young blobs,
    #: whose rows may still be on their way on another server.
    shared: bool

    def describe(self) -> str:
        """Where the blobs are, for logs (no secrets)."""
        ...

    async def put_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Store the complete file at ``path`` and return its SHA-256.

        The file is consumed once the blob is durable; it stays where it is if storing failed.

        Args:
            path: A complete file the server wrote itself, e.g. a finished upload.
            expected_sha256: The file's SHA-256 when the caller has just hashed it and flushed
                it to disk (a finished upload): it is then neither read to hash it again nor
                flushed again.
        """
        ...

    async def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its SHA-256; the same bytes again do nothing."""
        ...

    async def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        ...

    async def read(self, sha256: str) -> bytes:
        """The blob's bytes.

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        ...

    async def read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        """The blob's total size and up to ``length`` bytes from ``offset`` (none past the end).

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        ...

    async def delete(self, sha256: str) -> bool:
        """Remove the blob; return whether it existed. Only for blobs no row refers to."""
        ...

    def names(self, *, older_than_seconds: float = 0.0) -> AsyncIterator[str]:
        """Yield every stored blob's name, page by page, in no particular order.

        Args:
            older_than_seconds: Only blobs written at least this long ago.
        """
        ...

    async def sweep_temp_files(self, older_than_seconds: float) -> int:
        """Remove what interrupted writes left behind; return how many were removed.

        Args:
            older_than_seconds: Spare anything younger: a write may be in progress.
        """
        ...

    def storage_name(self, sha256: str) -> str:
        """The name :meth:`names` lists the blob whose content hashes to ``sha256`` under."""
        ...

    async def delete_stored(self, name: str) -> bool:
        """Remove the object :meth:`names` listed as ``name``; return whether it existed."""
        ...


class ObjectStore(BlobStorage, Protocol):
    """A :class:`BlobStorage` that also stores objects under names of the caller's choosing.

    The sealed store (:class:`~backend.atrest.sealed_blobs.SealedBlobs`) names objects by a
    keyed hash and keeps a keyring beside them; these are the operations it builds on. Names
    are 64 lowercase hex digits, like content hashes.
    """

    async def put_named(self, name: str, data: bytes) -> None:
        """Store ``data`` as the object ``name`` durably, replacing one of that name."""
        ...

    async def put_named_file(self, name: str, path: Path) -> None:
        """Store the complete file at ``path`` as the object ``name`` and remove the file."""
        ...

    async def read_range_through(
        self,
        name: str,
        offset: int,
        length: int,
        buffer: memoryview,
        each: Callable[[memoryview], object],
    ) -> int:
        """Read object ``name``'s ``length`` bytes from ``offset`` (fewer only at its end),
        handing them to ``each`` in order, a bufferful at a time: every piece but the last is
        ``len(buffer)`` bytes. Return how many were read.

        For the sealed store's ranged reads: its sealed bytes pass through one small buffer it
        reuses, and ``each`` opens every piece while it is still in the CPU's cache. ``each``
        runs in a worker thread; on a local disk the same one as the reads, so a sealed read
        costs one thread hop, as a plain one does.

        Raises:
            FileNotFoundError: No object has this name.
        """
        ...

    async def rewrite_head(self, name: str, head: bytes) -> None:
        """Replace the first ``len(head)`` bytes of object ``name`` (the rest unchanged).

        Raises:
            FileNotFoundError: No object has this name.
        """
        ...

    async def read_meta(self, meta_name: str) -> bytes | None:
        """The store-level document ``meta_name`` (e.g. ``keyring.json``), or ``None``."""
        ...

    async def write_meta(self, meta_name: str, data: bytes) -> None:
        """Replace the store-level document ``meta_name`` atomically."""
        ...


class LocalBlobs:
    """:class:`BlobStorage` in a folder of this machine, for a single server.

    Args:
        root: The folder; on the upload area's filesystem, a stored upload is renamed in.
    """

    shared = False

    def __init__(self, root: Path) -> None:
        self.store = BlobStore(root)
        self._replies = ReplyBuffers(REPLY_BUFFER_BYTES, REPLY_BUFFER_SMALLEST)

    def describe(self) -> str:
        """Where the blobs are, for logs."""
        return str(self.store.root)

    async def put_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Move the file at ``path`` into the folder; return its SHA-256 (see the protocol)."""
        return await asyncio.to_thread(self.store.put_file, path, expected_sha256)

    async def put(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256."""
        return await asyncio.to_thread(self.store.put, data)

    async def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        return await asyncio.to_thread(self.store.exists, sha256)

    async def read(self, sha256: str) -> bytes:
        """The blob's bytes."""
        return await asyncio.to_thread(self.store.read, sha256)

    async def read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        """The blob's size and up to ``length`` bytes from ``offset``.

        A large whole range (a download's slice) is read into one of the store's reply buffers
        (:class:`~backend.media.reply_buffers.ReplyBuffers`), a bytearray to be sent, not kept,
        as the sealed store opens its slices into its own.
        """
        reply = self._replies.take(length)
        if reply is None:
            return await asyncio.to_thread(self._read_range, sha256, offset, length)
        total, got = await asyncio.to_thread(
            self.store.read_range_into, sha256, offset, memoryview(reply)
        )
        if got == length:
            return total, cast(bytes, reply)  # sent as it is: msgspec encodes it as bytes
        # The last slice: a view of the buffer, which stays held until the reply is sent (a
        # copy of a few MiB would be fresh memory, faulted in page by page, every download).
        return total, cast(bytes, memoryview(reply)[:got])

    def _read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        with self.store.open(sha256) as stream:
            stream.seek(0, 2)
            total = stream.tell()
            stream.seek(min(offset, total))
            return total, stream.read(length)

    async def delete(self, sha256: str) -> bool:
        """Remove the blob; return whether it existed."""
        return await asyncio.to_thread(self.store.delete, sha256)

    def storage_name(self, sha256: str) -> str:
        """Blobs are stored under their content's hash."""
        return self.store.path_for(sha256).name

    async def delete_stored(self, name: str) -> bool:
        """Remove the blob listed as ``name`` (its hash)."""
        return await self.delete(name)

    async def put_named(self, name: str, data: bytes) -> None:
        """Store ``data`` as the blob ``name``."""
        await asyncio.to_thread(self.store.put_named, name, data)

    async def put_named_file(self, name: str, path: Path) -> None:
        """Move the file at ``path`` in as the blob ``name``."""
        await asyncio.to_thread(self.store.put_named_file, name, path)

    async def read_range_through(
        self,
        name: str,
        offset: int,
        length: int,
        buffer: memoryview,
        each: Callable[[memoryview], object],
    ) -> int:
        """Read blob ``name``'s bytes from ``offset`` through ``buffer`` into ``each``, in one
        worker thread; return how many."""
        return await asyncio.to_thread(self.store.read_through, name, offset, length, buffer, each)

    async def rewrite_head(self, name: str, head: bytes) -> None:
        """Overwrite the first bytes of blob ``name`` in place."""
        await asyncio.to_thread(self.store.rewrite_head, name, head)

    async def read_meta(self, meta_name: str) -> bytes | None:
        """The store-level document ``meta_name``, or ``None``."""
        return await asyncio.to_thread(self.store.read_meta, meta_name)

    async def write_meta(self, meta_name: str, data: bytes) -> None:
        """Replace the store-level document ``meta_name``."""
        await asyncio.to_thread(self.store.write_meta, meta_name, data)

    async def names(self, *, older_than_seconds: float = 0.0) -> AsyncIterator[str]:
        """Yield the stored blobs' names, listing the folder in a thread a page at a time."""
        cutoff = time.time() - older_than_seconds
        listing = self.store.iter_all()

        def page() -> tuple[bool, list[str]]:
            # One thread at a time advances the generator: each page is awaited before the next.
            names = list(itertools.islice(listing, LIST_PAGE))
            if older_than_seconds > 0:
                names_kept = [name for name in names if self._written_before(name, cutoff)]
                return bool(names), names_kept
            return bool(names), names

        while True:
            more, batch = await asyncio.to_thread(page)
            if not more:
                return
            for name in batch:
                yield name

    def _written_before(self, name: str, cutoff: float) -> bool:
        try:
            return self.store.path_for(name).stat().st_mtime <= cutoff
        except FileNotFoundError:
            return False

    async def sweep_temp_files(self, older_than_seconds: float) -> int:
        """Remove temporary files of interrupted writes untouched for ``older_than_seconds``."""
        return await asyncio.to_thread(self.store.sweep_temp_files, older_than_seconds)


def open_blob_storage(url: str | None, default_root: Path) -> ObjectStore:
    """The store ``--blobs`` names: an ``s3://`` URL, or ``None`` for ``default_root``.

    Raises:
        ValueError: ``url`` is not a valid object store URL.
    """
    if url is None:
        return LocalBlobs(default_root)
    # Imported here: the S3 client is loaded only by servers configured to use it.
    from backend.media.s3blobs import S3Blobs

    return S3Blobs.from_url(url)
