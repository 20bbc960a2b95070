"""Tests of :class:`backend.media.budget.PixelBudget`: decodes share a pixel budget, in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from backend.media.budget import PixelBudget


class Gate:
    """A blocking job that records when it started and waits until it is opened."""

    def __init__(self, name: str, started: list[str]) -> None:
        self.name = name
        self._started = started
        self._open = threading.Event()

    def __call__(self) -> str:
        self._started.append(self.name)
        assert self._open.wait(10)
        return self.name

    def open(self) -> None:
        """Let the job return."""
        self._open.set()


@pytest.fixture
async def budget() -> AsyncIterator[PixelBudget]:
    """A budget of 10 pixels and 4 threads, so the budget is what limits."""
    instance = PixelBudget(10, workers=4)
    yield instance
    instance.close()


async def settle() -> None:
    """Let threads and callbacks run."""
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_decodes_run_only_as_many_at_once_as_fit(budget: PixelBudget) -> None:
    started: list[str] = []
    gates = [Gate(str(n), started) for n in range(4)]
    runs = [asyncio.create_task(budget.run(4, gate)) for gate in gates]
    await settle()
    assert started == ["0", "1"] and budget.in_use == 8
    for gate in gates:
        gate.open()
    assert await asyncio.gather(*runs) == ["0", "1", "2", "3"]
    assert budget.peak == 8 and budget.in_use == 0


async def test_a_picture_over_the_budget_runs_alone(budget: PixelBudget) -> None:
    started: list[str] = []
    huge, small = Gate("huge", started), Gate("small", started)
    runs = [asyncio.create_task(budget.run(1_000, huge)), asyncio.create_task(budget.run(1, small))]
    await settle()
    assert started == ["huge"] and budget.in_use == 10
    huge.open()
    small.open()
    await asyncio.gather(*runs)
    assert budget.peak == 10


async def test_a_large_waiter_is_not_overtaken_by_small_ones(budget: PixelBudget) -> None:
    started: list[str] = []
    first, large, small = Gate("first", started), Gate("large", started), Gate("small", started)
    runs = [asyncio.create_task(budget.run(6, first))]
    await settle()
    runs.append(asyncio.create_task(budget.run(10, large)))
    await settle()
    runs.append(asyncio.create_task(budget.run(2, small)))
    await settle()
    assert started == ["first"]  # 2 pixels are free, but the large one came first
    first.open()
    await settle()
    assert started == ["first", "large"]
    large.open()
    small.open()
    await asyncio.gather(*runs)
    assert started == ["first", "large", "small"]


async def test_a_cancelled_request_holds_its_pixels_until_its_decode_ends(
    budget: PixelBudget,
) -> None:
    started: list[str] = []
    running, queued, later = (Gate(name, started) for name in ("running", "queued", "later"))
    first = asyncio.create_task(budget.run(10, running))
    await settle()
    waiting = asyncio.create_task(budget.run(5, queued))
    await settle()
    first.cancel()  # its link dropped: the thread decodes on
    waiting.cancel()  # this one never started: it gives up its place
    await settle()
    assert budget.in_use == 10 and started == ["running"]
    last = asyncio.create_task(budget.run(5, later))
    await settle()
    assert started == ["running"]
    running.open()
    later.open()
    assert await last == "later"
    assert started == ["running", "later"] and budget.in_use == 0
    with pytest.raises(asyncio.CancelledError):
        await first
