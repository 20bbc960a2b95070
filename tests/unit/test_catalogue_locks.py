"""Keyed locks serialise holders of a key, never deadlock on overlapping keys, and clean up."""

from __future__ import annotations

import asyncio

from backend.catalogue.locks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_others_do_not_wait() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, name: str, delay: float) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(delay)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", "first", 0.02), hold("a", "second", 0), hold("b", "other", 0))
    assert order.index("first-") < order.index("second+")
    assert order.index("other-") < order.index("first-")
    assert len(locks) == 0


async def test_overlapping_key_sets_do_not_deadlock() -> None:
    locks = KeyedLocks()

    async def hold(*keys: str) -> None:
        async with locks.hold(*keys):
            await asyncio.sleep(0.001)

    async with asyncio.timeout(2):
        await asyncio.gather(*(hold("x", "y") if i % 2 else hold("y", "x", "x") for i in range(20)))
    assert len(locks) == 0


async def test_a_cancelled_waiter_releases_its_place() -> None:
    locks = KeyedLocks()
    async with locks.hold("k"):
        waiter = asyncio.create_task(_enter(locks))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert len(locks) == 0


async def _enter(locks: KeyedLocks) -> None:
    async with locks.hold("k"):
        pass
