"""Provides :class:`CachedPictures`: the session's picture store, in memory in front of the disk.

:mod:`protocol.pictures` resolves every card of a batch against a
:class:`~protocol.pictures.PictureStore` whose ``get`` and ``put`` run on the event loop and must
be cheap. This one answers them from memory (a bounded LRU) and keeps the disk off the loop:

- ``put`` keeps the picture in memory and hands the file write to one background thread;
- ``prefetch`` (awaited by the protocol's resolvers before they ``get`` the pictures a reply
  named by hash only) reads what the disk holds in a thread, so those ``get`` calls hit memory
  and only the pictures neither holds are asked of the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping, Sequence
from typing import Final

from protocol.pictures import MemoryPictureStore
from tui.data.picture_cache import DiskPictureCache

#: Pictures kept in memory in front of the disk: a few hundred thumbnails and some previews.
MEMORY_BYTES: Final = 32 * 1024 * 1024


class CachedPictures:
    """A :class:`~protocol.pictures.PictureStore` over a :class:`DiskPictureCache`.

    Args:
        disk: the server's pictures on disk.
        memory_bytes: the in-memory layer's bound.
    """

    def __init__(self, disk: DiskPictureCache, *, memory_bytes: int = MEMORY_BYTES) -> None:
        self.disk = disk
        self.memory = MemoryPictureStore(memory_bytes)
        # One writer thread: writes land in order and never compete with each other for the
        # disk, and ``put`` returns at once whatever thread or loop calls it.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="picture-cache"
        )
        self._closed = False
        #: Pictures asked of the disk and found there, and asked but not found (for the bench
        #: and the tests: how much the disk spared the server).
        self.disk_hits = 0
        self.disk_misses = 0

    def get(self, sha256: str) -> bytes | None:
        """The picture if it is in memory (see :meth:`prefetch` for the disk)."""
        return self.memory.get(sha256)

    def put(self, sha256: str, data: bytes) -> None:
        """Keep a picture in memory now and on disk soon (the disk checks the hash again)."""
        self.memory.put(sha256, data)
        if not self._closed:
            self._writer.submit(self.disk.write, sha256, data)

    def sweep(self) -> None:
        """Delete, in the writer thread, temporary files that crashed writers left."""
        if not self._closed:
            self._writer.submit(self.disk.sweep_temporary)

    async def prefetch(self, sha256s: Sequence[str]) -> None:
        """Bring the pictures of ``sha256s`` that are on disk into memory (read in a thread)."""
        wanted = [digest for digest in dict.fromkeys(sha256s) if self.memory.get(digest) is None]
        if not wanted:
            return
        found = await self.disk.get_many(wanted)
        self.disk_hits += len(found)
        self.disk_misses += len(wanted) - len(found)
        for digest, data in found.items():
            self.memory.put(digest, data)

    async def load(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The pictures of ``sha256s`` found in memory or on disk, by hash."""
        await self.prefetch(sha256s)
        return {digest: data for digest in sha256s if (data := self.memory.get(digest))}

    async def keep(self, pictures: Mapping[str, bytes]) -> None:
        """Keep several pictures and wait until they are on disk."""
        for digest, data in pictures.items():
            self.memory.put(digest, data)
        await asyncio.to_thread(self.disk.write_many, dict(pictures))

    async def flush(self) -> None:
        """Wait until every picture handed to :meth:`put` so far is on disk."""
        done = self._writer.submit(lambda: None)
        await asyncio.wrap_future(done)

    async def close(self) -> None:
        """Finish the writes on their way, then stop the writer thread."""
        self._closed = True
        await asyncio.to_thread(self._writer.shutdown, wait=True)

    def retire(self) -> None:
        """Take no more writes; those on their way finish in the background."""
        self._closed = True
        self._writer.shutdown(wait=False)


__all__ = ["MEMORY_BYTES", "CachedPictures"]
