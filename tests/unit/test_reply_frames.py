"""Tests of the reply send path: replies encoded into kept buffers, large ones in fragments.

Proves that a reply arrives as exactly the bytes ``codec.encode`` gives (in one frame when
small, in fragments when large), that replies sent at once on one connection each arrive
whole (no buffer is encoded into while websockets may still read it), that a buffer is used
again once its send has returned and not while anything holds a view of it, and that the
pool keeps within its bounds.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from backend.media.reply_buffers import EncodeBuffers
from backend.reply_frames import ReplySender
from protocol import codec
from protocol.messages.base import Message
from protocol.messages.catalogue import OriginalData

KIB = 1024
FRAGMENT = 64 * KIB


def _reply(request_id: int, data: bytes) -> OriginalData:
    return OriginalData(
        id=request_id,
        item_id=7,
        offset=0,
        total=len(data),
        format="jpeg",
        sha256="0" * 64,
        stripped=False,
        data=data,
    )


class _Pair:
    """A loopback WebSocket server whose connection the test sends on, and a client."""

    server_side: ServerConnection
    client: ClientConnection


@pytest.fixture
async def pair() -> AsyncIterator[_Pair]:
    pair = _Pair()
    connected = asyncio.Event()
    done = asyncio.Event()

    async def handler(websocket: ServerConnection) -> None:
        pair.server_side = websocket
        connected.set()
        await done.wait()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as client:
            pair.client = client
            await connected.wait()
            yield pair
            done.set()


async def _frames_of_next_message(client: ClientConnection) -> list[bytes]:
    frames = [part async for part in client.recv_streaming()]
    assert all(isinstance(frame, bytes) for frame in frames)
    return [frame for frame in frames if isinstance(frame, bytes)]


async def _next_message(client: ClientConnection) -> Message:
    frame = await client.recv()
    assert isinstance(frame, bytes)
    return codec.decode(frame)


async def test_a_small_reply_is_one_frame_of_the_encoded_bytes(pair: _Pair) -> None:
    sender = ReplySender(fragment_bytes=FRAGMENT)
    reply = _reply(1, os.urandom(1000))
    await sender.send(pair.server_side, reply)
    assert await _frames_of_next_message(pair.client) == [codec.encode(reply)]


async def test_a_large_reply_is_the_encoded_bytes_in_fragments(pair: _Pair) -> None:
    sender = ReplySender(fragment_bytes=FRAGMENT)
    reply = _reply(2, os.urandom(5 * FRAGMENT + 123))
    encoded = codec.encode(reply)
    await sender.send(pair.server_side, reply)
    frames = await _frames_of_next_message(pair.client)
    assert b"".join(frames) == encoded
    # websockets ends a fragmented message with an empty last frame.
    assert [len(frame) for frame in frames] == [FRAGMENT] * 5 + [len(encoded) - 5 * FRAGMENT, 0]
    await sender.send(pair.server_side, reply)  # and recv() reassembles them
    assert await _next_message(pair.client) == reply


async def test_replies_sent_at_once_each_arrive_whole(pair: _Pair) -> None:
    # The client reads nothing for a while and the sockets buffer little: the first send waits
    # for the transport to drain, its buffer in use, while the others encode into theirs.
    pair.server_side.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB
    )
    pair.client.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KIB
    )
    pair.client.transport.pause_reading()
    sender = ReplySender(fragment_bytes=FRAGMENT)
    replies = [_reply(n, os.urandom(16 * FRAGMENT + n)) for n in range(1, 5)]
    sends = asyncio.gather(*(sender.send(pair.server_side, reply) for reply in replies))
    async with asyncio.timeout(5):
        while len(sender.buffers) < len(replies):
            await asyncio.sleep(0.01)
    assert not sends.done()
    pair.client.transport.resume_reading()
    received = [await _next_message(pair.client) for _ in replies]
    await sends
    by_id = {message.id: message for message in received if isinstance(message, OriginalData)}
    assert [by_id.get(reply.id) for reply in replies] == replies


async def test_one_buffer_serves_replies_sent_one_after_another(pair: _Pair) -> None:
    sender = ReplySender(fragment_bytes=FRAGMENT)
    for n in range(1, 4):
        reply = _reply(n, os.urandom(4 * FRAGMENT))
        await sender.send(pair.server_side, reply)
        assert await _next_message(pair.client) == reply
    assert len(sender.buffers) == 1


class _Keeper:
    """A connection whose ``send`` keeps what it was given (as a transport could)."""

    def __init__(self) -> None:
        self.kept: list[Any] = []

    async def send(self, message: Any) -> None:
        parts = [message] if isinstance(message, memoryview) else list(message)
        self.kept.append(parts)


def _joined(parts: Iterable[memoryview]) -> bytes:
    return b"".join(bytes(part) for part in parts)


async def test_a_buffer_still_viewed_after_its_send_is_not_encoded_into() -> None:
    sender = ReplySender(fragment_bytes=FRAGMENT)
    keeper = _Keeper()
    first, second = _reply(1, os.urandom(3 * FRAGMENT)), _reply(2, os.urandom(3 * FRAGMENT))
    await sender.send(keeper, first)
    await sender.send(keeper, second)
    assert _joined(keeper.kept[0]) == codec.encode(first)
    assert _joined(keeper.kept[1]) == codec.encode(second)
    assert len(sender.buffers) == 2
    keeper.kept.clear()  # the views are let go: both buffers are free again
    third: Message = _reply(3, b"small")
    await sender.send(keeper, third)
    assert _joined(keeper.kept[0]) == codec.encode(third)
    assert len(sender.buffers) == 2


def test_encode_buffers_hand_out_only_buffers_nobody_holds_and_keep_their_bounds() -> None:
    buffers = EncodeBuffers(keep_bytes=3 * FRAGMENT, keep_buffers=2)
    first = buffers.take()
    second = buffers.take()
    third = buffers.take()  # past keep_buffers: a buffer of its own, not kept
    assert len({id(first), id(second), id(third)}) == 3 and len(buffers) == 2
    first.extend(os.urandom(2 * FRAGMENT))  # encoded into
    view = memoryview(first)  # and being sent
    first_id = id(first)
    del first
    assert id(buffers.take()) != first_id  # a view of it is alive
    view.release()
    second.extend(bytes(2 * FRAGMENT))
    second_id = id(second)
    del second, third
    taken = buffers.take()
    assert id(taken) in (first_id, second_id)  # free again, the larger memory first
    del taken
    buffers.trim()  # 4 fragments' memory kept against 3 allowed: the largest idle one goes
    assert len(buffers) == 1
