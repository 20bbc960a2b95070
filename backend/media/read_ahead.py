"""Provides :class:`SliceReader`: a download's slices, the next one read while the last is sent.

A client downloads an original in slices, one request at a time, each asking for the bytes after
the last. Reading a slice (and, in a sealed store, opening it) done when the request comes adds
to every slice's round trip. So when a whole slice is served, the reader starts reading the one
after it in the background (in a worker thread, as any read), while the event loop sends the
slice served; the next request finds it read, or under way.

Every store is read the same way, sealed or not: the only difference between an encrypted and an
unencrypted server's downloads is the store's own read (which opens the segments read).

What is read ahead is served only to a caller asking for exactly that slice of that blob, and
callers ask only after checking that the user may read the picture, as for any read (a blob never
changes: its name is its content's hash). Bounded: :data:`READ_AHEAD_SLICES` slices at most, the
oldest dropped (and its read cancelled) for a new one, so a download abandoned half way holds one
slice's memory until others push it out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

from backend.media.blobs import BlobDamaged, BlobStorage

#: Slices read ahead at most: a few downloads at once (4 MiB each).
READ_AHEAD_SLICES: Final = 4

#: ``(blob name, offset, length)``: a slice as a caller asks for it.
SliceKey: TypeAlias = tuple[str, int, int]
#: A read's result: the blob's size and the slice's bytes.
Slice: TypeAlias = tuple[int, bytes]


def _retrieve(task: asyncio.Task[Slice]) -> None:
    """Mark a failure seen: a slice nobody asked for after all fails quietly (the store logs
    what matters, e.g. damage, when it happens)."""
    if not task.cancelled():
        task.exception()


class ReadAhead:
    """Slices being read (or read) before they are asked for, by blob, offset and length.

    Used on the event loop only.

    Args:
        slices: How many are kept at most.
    """

    def __init__(self, slices: int = READ_AHEAD_SLICES) -> None:
        self._slices = slices
        self._pending: OrderedDict[SliceKey, asyncio.Task[Slice]] = OrderedDict()

    def take(self, key: SliceKey) -> asyncio.Task[Slice] | None:
        """The read of slice ``key`` if one was started (it is no longer kept), or ``None``."""
        return self._pending.pop(key, None)

    def start(self, key: SliceKey, read: Callable[[], Awaitable[Slice]]) -> None:
        """Start ``read`` of slice ``key`` in the background, unless it is under way already."""
        if key in self._pending:
            return

        async def run() -> Slice:
            return await read()

        task = asyncio.get_running_loop().create_task(run())
        task.add_done_callback(_retrieve)
        self._pending[key] = task
        while len(self._pending) > self._slices:
            _, oldest = self._pending.popitem(last=False)
            oldest.cancel()

    def forget(self, name: str) -> None:
        """Drop (and cancel) every slice of blob ``name``: it is being removed."""
        for key in [key for key in self._pending if key[0] == name]:
            self._pending.pop(key).cancel()

    def __len__(self) -> int:
        return len(self._pending)


class SliceReader:
    """Ranged reads of a store's blobs for downloads, the next slice read ahead.

    Args:
        blobs: The store (plain or sealed: read the same way).
        slices: Slices read ahead at most.
    """

    def __init__(self, blobs: BlobStorage, slices: int = READ_AHEAD_SLICES) -> None:
        self._blobs = blobs
        self._ahead = ReadAhead(slices)

    async def read_range(self, sha256: str, offset: int, length: int) -> Slice:
        """The blob's size and up to ``length`` bytes from ``offset``, as
        :meth:`~backend.media.blobs.BlobStorage.read_range` gives them.

        When they are a whole ``length`` and more follow, the next ``length`` bytes are read
        ahead: a download asks for them next. Call only for a user allowed to read the blob.

        Raises:
            FileNotFoundError: The blob is not stored.
            BlobDamaged: It does not open (the store logged it, once).
        """
        result = await self._read_ahead(sha256, offset, length)
        if result is None:
            result = await self._blobs.read_range(sha256, offset, length)
        total, data = result
        end = offset + len(data)
        if len(data) == length and end < total:
            self._ahead.start(
                (sha256, end, length), lambda: self._blobs.read_range(sha256, end, length)
            )
        return result

    async def _read_ahead(self, sha256: str, offset: int, length: int) -> Slice | None:
        """The slice if it was read ahead; ``None`` if not, or if that read failed for a reason
        worth trying again (e.g. the store was out of reach, or the blob is gone).

        Raises:
            BlobDamaged: It was read ahead and does not open (logged then).
        """
        task = self._ahead.take((sha256, offset, length))
        if task is None:
            return None
        try:
            return await task
        except BlobDamaged:
            raise
        except Exception:
            return None  # read again, where a lasting failure is reported as for any read

    def forget(self, sha256: str) -> None:
        """Drop what was read ahead of blob ``sha256``: it is being removed."""
        self._ahead.forget(sha256)
