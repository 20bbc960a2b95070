"""Provides :class:`ReplySender`: replies encoded into reused buffers and sent in fragments.

A download's reply carries a slice of a few MiB. Encoded into a new ``bytes``, framed by
websockets into another (its frame serialiser copies the payload) and encrypted by the TLS
layer into a third, it made three fresh allocations of the whole slice per reply. From 1 MiB on
glibc maps each on its own and unmaps it when freed (:func:`backend.admission.return_freed_memory`
fixes that threshold so large messages give their memory back), so every one was faulted in
page by page: about 750 page faults per MB sent, the larger part of a download's CPU, and more
or less of it from run to run as the heap happened to be laid out.

Here a reply is encoded into a kept buffer (:class:`~backend.media.reply_buffers.EncodeBuffers`),
and a large one is sent as a fragmented WebSocket message: websockets then copies, and the TLS
layer encrypts, one fragment at a time, allocations small enough to come from the heap and be
used again. The message is the same bytes (every WebSocket client reassembles fragments; the
protocol's :meth:`websockets.asyncio.connection.Connection.recv` does), and websockets waits
for the transport to drain between fragments, so a slow reader holds one fragment of the
reply in the transport's buffers, not all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Protocol

from backend.media.reply_buffers import EncodeBuffers
from protocol import codec
from protocol.messages.base import Message

#: Payload bytes per WebSocket frame of a large message: a quarter of glibc's mapping threshold
#: as the server sets it, so each fragment's copies come from the heap.
FRAGMENT_BYTES: Final = 256 * 1024
#: Memory of encode buffers kept: a few downloads' replies being sent at once.
KEEP_BYTES: Final = 32 * 1024 * 1024
#: Encode buffers kept at most (more replies encoded at once get buffers of their own).
KEEP_BUFFERS: Final = 8


class MessageSink(Protocol):
    """Where messages go: a websockets connection (an iterable is sent in fragments)."""

    async def send(self, message: memoryview | Iterator[memoryview]) -> None: ...


class ReplySender:
    """Encodes messages into kept buffers and sends them, large ones in fragments.

    A buffer is handed to websockets as views only and is used again once the send has
    returned (or failed) and no view of it is left: websockets has by then copied every
    fragment it framed, and a view still held anywhere keeps the buffer from being reused.

    Args:
        fragment_bytes: Payload bytes per frame of a message larger than that.
        keep_bytes: Memory of encode buffers kept at most.
        keep_buffers: Encode buffers kept at most.
    """

    def __init__(
        self,
        fragment_bytes: int = FRAGMENT_BYTES,
        keep_bytes: int = KEEP_BYTES,
        keep_buffers: int = KEEP_BUFFERS,
    ) -> None:
        self._fragment_bytes = fragment_bytes
        self._buffers = EncodeBuffers(keep_bytes, keep_buffers)

    @property
    def buffers(self) -> EncodeBuffers:
        """The pool of encode buffers (for tests and metrics)."""
        return self._buffers

    async def send(self, websocket: MessageSink, message: Message) -> None:
        """Send ``message`` as one binary WebSocket message.

        Raises:
            ConnectionClosed: as websockets' ``send`` does.
        """
        buffer = self._buffers.take()
        try:
            codec.encode_into(message, buffer)
            if len(buffer) <= self._fragment_bytes:
                await websocket.send(memoryview(buffer))
            else:
                await websocket.send(_fragments(buffer, self._fragment_bytes))
        finally:
            del buffer
            self._buffers.trim()


def _fragments(buffer: bytearray, size: int) -> Iterator[memoryview]:
    """Views of ``buffer`` of ``size`` bytes (the last one shorter), each let go once used."""
    for start in range(0, len(buffer), size):
        yield memoryview(buffer)[start : start + size]
