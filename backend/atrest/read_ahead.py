"""Provides :class:`ReadAhead`: the next slice of a download, opened while the last one is sent.

A client downloads an original in slices, one request at a time, each asking for the bytes after
the last. Opening a sealed slice costs its decryption, and done when the request comes, that cost
adds to every slice's round trip. So when a whole slice is served, the sealed store starts
reading and opening the one after it in the background (the reading and the decryption run in
worker threads, which the decryption does not hold the GIL in), while the event loop sends the
slice served; the next request finds it opened, or under way.

What is read ahead is served only to a caller asking for exactly that slice of that object, and
callers ask only after checking that the user may read the picture, as for any read. Bounded:
:data:`READ_AHEAD_SLICES` slices at most, the oldest dropped (and its read cancelled) for a new
one, so a download abandoned half way holds one slice's memory until others push it out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

#: Slices read ahead at most: a few downloads at once (4 MiB each).
READ_AHEAD_SLICES: Final = 4

#: ``(object name, offset, length)``: a slice as a caller asks for it.
SliceKey: TypeAlias = tuple[str, int, int]
#: A read's result: the object's size and the slice's bytes.
Slice: TypeAlias = tuple[int, bytes]


def _retrieve(task: asyncio.Task[Slice]) -> None:
    """Mark a failure seen: a slice nobody asked for after all fails quietly (the store logs
    what matters, e.g. damage, when it happens)."""
    if not task.cancelled():
        task.exception()


class ReadAhead:
    """Slices being read (or read) before they are asked for, by object, offset and length.

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
        """Drop (and cancel) every slice of object ``name``: it is being removed."""
        for key in [key for key in self._pending if key[0] == name]:
            self._pending.pop(key).cancel()

    def __len__(self) -> int:
        return len(self._pending)
