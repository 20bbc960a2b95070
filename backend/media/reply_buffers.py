"""Provides :class:`ReplyBuffers`: the buffers downloads' slices are read into, used again.

A download's slice is a few MiB. Read into a new buffer each time, its memory is faulted in
(and zeroed by the kernel) page by page whenever the allocator has given the last one back to
the kernel, which it does or not depending on what else the process allocated: that costs more
than reading or decrypting the slice, and came and went between runs, on one store then the
other. Every store (plain on disk, or sealed) reads large ranges into these buffers instead.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Final

#: Bytes of slices kept for reuse: a few downloads' slices, those read ahead included.
REPLY_BUFFER_BYTES: Final = 32 * 1024 * 1024
#: The smallest read that uses them (a thumbnail's is cheap to allocate).
REPLY_BUFFER_SMALLEST: Final = 1024 * 1024

# CPython's own constructor, given no bytes to copy: a bytearray whose memory is not zeroed.
_new_bytearray = ctypes.pythonapi.PyByteArray_FromStringAndSize
_new_bytearray.restype = ctypes.py_object
_new_bytearray.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def unfilled_bytearray(size: int) -> bytearray:
    """A bytearray of ``size`` bytes left as the allocator gave them (any earlier contents).

    For buffers every byte of which is written before anyone reads them (a slice read or
    opened into): ``bytearray(size)`` zeroes the memory first, a pass over every byte
    downloaded that reading into a new ``bytes`` does not make. Never hand out such a buffer
    unless it was wholly written.
    """
    buffer = _new_bytearray(None, size)
    assert isinstance(buffer, bytearray)
    return buffer


def _idle_references() -> int:
    """The reference count ``sys.getrefcount`` gives, in a list comprehension over a pool's
    list, of a buffer only that list holds (measured the way the pools look, so it holds
    whatever the interpreter counts)."""
    kept = [bytearray()]
    return [sys.getrefcount(buffer) for buffer in kept][0]


class ReplyBuffers:
    """The buffers large ranged reads are read (or opened) into and handed out in, used again
    once the reply carrying one is sent and let go.

    A download's slice is a few MiB; a new buffer for each has its memory faulted in and zeroed
    by the kernel page by page, which costs more than decrypting the slice. A kept buffer is
    free again when nothing but this pool refers to it: whoever holds a slice (a reply being
    encoded, a slice read ahead, a thread still opening into it) holds a reference, so a buffer
    in use is never handed out twice. Used on the event loop only.

    Args:
        keep_bytes: Bytes kept at most; a read finding none free within that gets a new buffer.
        smallest: Reads smaller than this get a new buffer (a thumbnail is cheap to allocate).
    """

    def __init__(self, keep_bytes: int, smallest: int) -> None:
        self._keep_bytes = keep_bytes
        self._smallest = smallest
        self._kept: list[bytearray] = []
        self._idle = _idle_references()

    def take(self, size: int) -> bytearray | None:
        """A kept buffer of ``size`` bytes that nobody holds (its contents stale, to be written
        whole), or ``None``: make a new one."""
        if size < self._smallest:
            return None
        idle = [buffer for buffer in self._kept if sys.getrefcount(buffer) <= self._idle]
        for buffer in idle:
            if len(buffer) == size:
                return buffer
        held = sum(len(buffer) for buffer in self._kept)
        for buffer in idle:  # make room: free buffers of other sizes go first
            if held + size <= self._keep_bytes:
                break
            self._kept.remove(buffer)
            held -= len(buffer)
        if held + size > self._keep_bytes:
            return None
        buffer = unfilled_bytearray(size)
        self._kept.append(buffer)
        return buffer

    def __len__(self) -> int:
        return len(self._kept)


class EncodeBuffers:
    """The buffers replies are encoded into (``msgspec``'s ``encode_into``), used again once
    nothing but this pool refers to one.

    An encoded download reply is a few MiB; a new ``bytes`` for each is mapped and faulted in
    page by page (allocations from 1 MiB on are mapped on their own and unmapped when freed:
    :func:`backend.admission.return_freed_memory`). A kept buffer keeps its memory when a
    smaller message is encoded into it, so the next large one finds its pages there. Whoever
    still holds a buffer or a view of it (a send in progress) holds a reference, so a buffer
    in use is never handed out twice; the sender hands out views only, which also keep the
    encoder from resizing a buffer under them. Used on the event loop only.

    Args:
        keep_bytes: Bytes of memory (allocated, not just used) kept at most.
        keep_buffers: Buffers kept at most (replies encoded at once beyond it get new ones).
    """

    def __init__(self, keep_bytes: int, keep_buffers: int) -> None:
        self._keep_bytes = keep_bytes
        self._keep_buffers = keep_buffers
        self._kept: list[bytearray] = []
        self._idle = _idle_references()

    def take(self) -> bytearray:
        """A buffer nobody else holds, to encode into (its contents replaced): the kept one
        with the most memory, or a new one, kept if there is room."""
        idle = [buffer for buffer in self._kept if sys.getrefcount(buffer) <= self._idle]
        if idle:
            return max(idle, key=lambda buffer: buffer.__alloc__())
        buffer = bytearray()
        if len(self._kept) < self._keep_buffers:
            self._kept.append(buffer)
        return buffer

    def trim(self) -> None:
        """Drop idle buffers, largest first, until the memory kept is within the bound (call
        once a buffer from :meth:`take` is let go: encoding may have grown it)."""
        held = sum(buffer.__alloc__() for buffer in self._kept)
        if held <= self._keep_bytes:
            return
        idle = [buffer for buffer in self._kept if sys.getrefcount(buffer) <= self._idle]
        for buffer in sorted(idle, key=lambda buffer: buffer.__alloc__(), reverse=True):
            if held <= self._keep_bytes:
                break
            self._kept.remove(buffer)
            held -= buffer.__alloc__()

    def __len__(self) -> int:
        return len(self._kept)
