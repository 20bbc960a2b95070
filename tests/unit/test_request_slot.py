"""The wait for one of a connection's request slots ends with the connection's close, and never
loses or double-counts a slot, whichever of the two comes first or however it is cut short."""

from __future__ import annotations

import asyncio

from backend.transport import _request_slot


class _Socket:
    """What the wait needs of a connection: a way to wait for its close."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def wait_closed(self) -> None:
        await self.closed.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_free_slot_is_taken_at_once() -> None:
    slots = asyncio.Semaphore(1)
    assert await _request_slot(_Socket(), slots)  # type: ignore[arg-type]
    assert slots.locked()


async def test_a_slot_freed_while_waiting_is_taken() -> None:
    slots = asyncio.Semaphore(1)
    await slots.acquire()
    wait = asyncio.create_task(_request_slot(_Socket(), slots))  # type: ignore[arg-type]
    await _settle()
    slots.release()
    assert await wait
    assert slots.locked()  # the slot is the waiter's now


async def test_a_close_while_waiting_takes_no_slot() -> None:
    slots = asyncio.Semaphore(1)
    await slots.acquire()
    socket = _Socket()
    wait = asyncio.create_task(_request_slot(socket, slots))  # type: ignore[arg-type]
    await _settle()
    socket.closed.set()
    assert not await wait
    slots.release()  # the running request ends: its slot is free for the next, not lost
    assert await _request_slot(_Socket(), slots)  # type: ignore[arg-type]


async def test_a_slot_granted_as_the_wait_is_cancelled_is_given_back() -> None:
    slots = asyncio.Semaphore(1)
    await slots.acquire()
    for turns in range(4):  # cancelled before, with and after the grant
        wait = asyncio.create_task(_request_slot(_Socket(), slots))  # type: ignore[arg-type]
        await _settle()
        slots.release()
        for _ in range(turns):
            await asyncio.sleep(0)
        wait.cancel()
        results = await asyncio.gather(wait, return_exceptions=True)
        if results[0] is True:
            slots.release()  # it got the slot before the cancellation: the caller's to give
        assert not slots.locked(), turns
        await slots.acquire()
