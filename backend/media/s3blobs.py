"""Provides :class:`S3Blobs`: pictures in an S3-compatible object store, shared by a cluster.

Keys are laid out as on disk (``[PREFIX/]ab/cd/abcdef...``), so a data dir's ``blobs`` folder and
a bucket copy into each other file for file. The client is obstore (Rust's ``object_store``):
async, ranged GETs (``GetOriginal`` reads one slice, not the object), multipart uploads for
large files (parts sent concurrently, the upload aborted on failure so no half-object is ever
visible), and retries with exponential backoff and jitter on 5xx answers, dropped connections
and timeouts. The retry budget is kept short (:data:`RETRY`): a request waiting on a store that
is down should hear ``unavailable`` in seconds, not block for the client's default 3 minutes.

An S3 PUT is durable when it returns, so the catalogue's order holds: object first, then the
row naming it. Nothing is written in place, so there are no temporary objects to sweep.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from backend.media.blob_urls import BlobStoreLocation, parse_blob_store_url
from backend.media.blobs import LIST_PAGE, StoreUnavailable
from backend.media.blobstore import is_sha256
from backend.media.fsutil import sha256_of

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

log = logging.getLogger(__name__)

#: Parts of a multipart upload; files larger than one part are uploaded in parts.
PART_BYTES: Final = 8 * 1024 * 1024
#: Parts of one file in flight at once.
PART_CONCURRENCY: Final = 4
#: Retries with backoff on 5xx, dropped connections and timeouts, within a few seconds in all.
RETRY: Final[RetryConfig] = {
    "max_retries": 4,
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=1),
        "base": 2,
    },
    "retry_timeout": timedelta(seconds=5),
}
#: Connection set-up is quick on a healthy store; a part of PART_BYTES has half a minute.
CLIENT: Final[ClientConfig] = {
    "connect_timeout": timedelta(seconds=2),
    "timeout": timedelta(seconds=30),
}
#: What a client is told to wait before retrying when the store is down.
RETRY_AFTER: Final = 2.0


def key_for(sha256: str) -> str:
    """The object key of the blob ``sha256`` (below the store's prefix).

    Raises:
        ValueError: ``sha256`` is not 64 lowercase hex digits.
    """
    if not is_sha256(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{sha256[0:2]}/{sha256[2:4]}/{sha256}"


def _meta_key(meta_name: str) -> str:
    """The key of a store-level document: a plain name, beside the blobs' fan-out folders."""
    if not (
        meta_name[:1].isalpha() and meta_name.replace(".", "").isalnum() and meta_name.islower()
    ):
        raise ValueError(f"not a store document name: {meta_name!r}")
    return meta_name


def _is_blob_key(key: str) -> bool:
    """Whether ``key`` (relative to the prefix) is a blob in its right place."""
    first, _, rest = key.partition("/")
    second, _, name = rest.partition("/")
    return is_sha256(name) and name.startswith(first + second) and len(first) == len(second) == 2


def raise_unavailable(action: str, exc: Exception) -> NoReturn:
    """Log the store's failure (first line only) and raise :class:`StoreUnavailable`."""
    # The message is the client's, which names the bucket and key but never credentials.
    # Only the first line: the rest is the client's debug dump of the retried request.
    log.warning("object store unavailable (%s): %s", action, str(exc).partition("\n")[0])
    raise StoreUnavailable(
        f"the picture store failed to {action}", retry_after=RETRY_AFTER
    ) from exc


def open_s3_store(url: str) -> tuple[S3Store, BlobStoreLocation]:
    """A client of ``s3://BUCKET[/PREFIX]?endpoint=...`` with this module's retries and timeouts.

    Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...).

    Raises:
        ValueError: ``url`` is not a valid object store URL.
    """
    location = parse_blob_store_url(url)
    client: ClientConfig = {**CLIENT}
    extra: dict[str, str] = {}
    if location.endpoint is not None:
        client["allow_http"] = location.endpoint.startswith("http://")
        extra["endpoint"] = location.endpoint
    store = S3Store(
        location.bucket,
        prefix=location.prefix or None,
        region=location.region,
        # Path-style requests: S3-compatible servers seldom have a DNS name per bucket.
        virtual_hosted_style_request=False,
        client_options=client,
        retry_config=RETRY,
        **extra,  # type: ignore[arg-type]
    )
    return store, location


class S3Blobs:
    """:class:`~backend.media.blobs.BlobStorage` in an S3-compatible object store.

    Args:
        store: The obstore client, with its bucket and prefix.
        location: Where it points, for logs.
    """

    shared = True

    def __init__(self, store: S3Store, location: BlobStoreLocation) -> None:
        self._store = store
        self._location = location

    @classmethod
    def from_url(cls, url: str) -> S3Blobs:
        """A store for ``s3://BUCKET[/PREFIX]?endpoint=...``; credentials from the environment.

        Raises:
            ValueError: ``url`` is not a valid object store URL.
        """
        return cls(*open_s3_store(url))

    def describe(self) -> str:
        """Where the blobs are, for logs."""
        return self._location.describe()

    async def put_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Upload the file at ``path`` (in parts when large) and remove it; return its hash.

        Args:
            path: A complete file the server wrote itself, e.g. a finished upload.
            expected_sha256: The file's SHA-256 when the caller has just hashed it and flushed
                it to disk (a finished upload): it is then not read to hash it again.
        """

        def digest() -> str:
            with open(path, "rb") as stream:
                return sha256_of(stream)

        sha256 = await asyncio.to_thread(digest) if expected_sha256 is None else expected_sha256
        if await self.exists(sha256):
            await asyncio.to_thread(path.unlink, True)
        else:
            # Removes the file only once stored: had the upload failed, it would still be
            # there to try again.
            await self.put_named_file(sha256, path)
        return sha256

    async def put(self, data: bytes) -> str:
        """Upload ``data``; return its SHA-256."""
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            await obstore.put_async(self._store, key_for(sha256), data)
        except BaseError as exc:
            raise_unavailable("store a picture", exc)
        return sha256

    async def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        try:
            await obstore.head_async(self._store, key_for(sha256))
        except FileNotFoundError:
            return False
        except BaseError as exc:
            raise_unavailable("look up a picture", exc)
        return True

    async def size(self, sha256: str) -> int:
        """The blob's size in bytes.

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        try:
            meta = await obstore.head_async(self._store, key_for(sha256))
        except BaseError as exc:
            raise_unavailable("look up a picture", exc)
        return meta["size"]

    async def read(self, sha256: str) -> bytes:
        """The blob's bytes."""
        try:
            result = await obstore.get_async(self._store, key_for(sha256))
            return bytes(await result.bytes_async())
        except BaseError as exc:
            raise_unavailable("read a picture", exc)

    async def read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        """The blob's size and up to ``length`` bytes from ``offset``, in one ranged GET."""
        key = key_for(sha256)
        if length <= 0:
            return await self.size(sha256), b""
        try:
            result = await obstore.get_async(
                self._store, key, options={"range": (offset, offset + length)}
            )
            return result.meta["size"], bytes(await result.bytes_async())
        except FileNotFoundError:
            raise
        except BaseError as exc:
            # S3 refuses a range that starts at or past the end (416): answer as a file would.
            total = await self.size(sha256)
            if offset >= total:
                return total, b""
            raise_unavailable("read a picture", exc)

    async def delete(self, sha256: str) -> bool:
        """Remove the blob; return whether it existed."""
        if not await self.exists(sha256):
            return False
        try:
            await obstore.delete_async(self._store, key_for(sha256))
        except FileNotFoundError:
            return False
        except BaseError as exc:
            raise_unavailable("remove a picture", exc)
        return True

    async def names(self, *, older_than_seconds: float = 0.0) -> AsyncIterator[str]:
        """Yield the stored blobs' names, one LIST page at a time."""
        cutoff = time.time() - older_than_seconds
        try:
            async for page in obstore.list(self._store, chunk_size=LIST_PAGE):
                for meta in page:
                    key = meta["path"]
                    if not _is_blob_key(key):
                        continue
                    if older_than_seconds > 0 and meta["last_modified"].timestamp() > cutoff:
                        continue
                    yield key.rsplit("/", 1)[1]
        except BaseError as exc:
            raise_unavailable("list the pictures", exc)

    async def sweep_temp_files(self, older_than_seconds: float) -> int:
        """Nothing to do: objects appear whole or not at all (failed multiparts are aborted)."""
        return 0

    def storage_name(self, sha256: str) -> str:
        """Blobs are stored under their content's hash."""
        key_for(sha256)  # validates
        return sha256

    async def delete_stored(self, name: str) -> bool:
        """Remove the blob listed as ``name`` (its hash)."""
        return await self.delete(name)

    async def put_named(self, name: str, data: bytes) -> None:
        """Upload ``data`` as the object ``name``."""
        try:
            await obstore.put_async(self._store, key_for(name), data, chunk_size=PART_BYTES)
        except BaseError as exc:
            raise_unavailable("store a picture", exc)

    async def put_named_file(self, name: str, path: Path) -> None:
        """Upload the file at ``path`` (in parts when large) as the object ``name``; remove it."""
        try:
            await obstore.put_async(
                self._store,
                key_for(name),
                path,
                chunk_size=PART_BYTES,
                max_concurrency=PART_CONCURRENCY,
            )
        except BaseError as exc:
            raise_unavailable("store a picture", exc)
        await asyncio.to_thread(path.unlink, True)

    async def read_range_through(
        self,
        name: str,
        offset: int,
        length: int,
        buffer: memoryview,
        each: Callable[[memoryview], object],
    ) -> int:
        """Read object ``name``'s bytes from ``offset`` with one ranged GET and hand them to
        ``each`` ``len(buffer)`` bytes at a time, in a worker thread (they come off the network
        whole: ``buffer`` is not needed); return how many."""
        _, data = await self.read_range(name, offset, length)

        def hand_over() -> None:
            view = memoryview(data)
            for start in range(0, len(view), len(buffer)):
                each(view[start : start + len(buffer)])

        await asyncio.to_thread(hand_over)
        return len(data)

    async def rewrite_head(self, name: str, head: bytes) -> None:
        """Write the object again with its first bytes replaced (objects cannot be patched).

        The PUT replaces the object atomically: readers see the old or the new one whole.
        """
        data = await self.read(name)
        await self.put_named(name, head + data[len(head) :])

    async def read_meta(self, meta_name: str) -> bytes | None:
        """The document ``meta_name`` at the prefix's top, or ``None``."""
        try:
            result = await obstore.get_async(self._store, _meta_key(meta_name))
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None
        except BaseError as exc:
            raise_unavailable("read the store's keyring", exc)

    async def write_meta(self, meta_name: str, data: bytes) -> None:
        """Replace the document ``meta_name`` at the prefix's top."""
        try:
            await obstore.put_async(self._store, _meta_key(meta_name), data)
        except BaseError as exc:
            raise_unavailable("write the store's keyring", exc)
