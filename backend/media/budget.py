"""Provides :class:`PixelBudget`: a server-wide bound on the pixels held by decodes at once.

A decode holds its picture's pixels in memory until it is reduced: a 49-megapixel PNG is about
200 MB of RGB however small its file (one of 156 KB is a single colour). Without a bound, as
many such decodes run as there are worker threads: 16 searches by that PNG sent at once took a
server from 185 MB to 1.38 GB. Each decode here first reserves the pixels it will hold; what does
not fit waits, first come first served, so a large picture is not starved by a stream of small
ones. A picture larger than the whole budget reserves all of it and runs alone.

The reservation lasts until the decode's thread returns, not until its caller stops waiting: a
request cancelled mid-decode (its connection dropped) leaves the thread decoding, and the memory
held, until it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class PixelBudget:
    """Runs blocking decodes in threads, only as many at once as fit in a pixel budget.

    Use it from one event loop.

    Args:
        pixels: The most pixels the running decodes may hold together.
        workers: Threads decoding at once at most (decoding is CPU-bound: by default one per
            core, since more only add memory, not speed).
    """

    def __init__(self, pixels: int, *, workers: int | None = None) -> None:
        if pixels < 1:
            raise ValueError("a pixel budget must be positive")
        self.pixels = pixels
        self._free = pixels
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._executor = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="pixmart-decode"
        )
        #: The most pixels reserved at once so far (for tests and benchmarks).
        self.peak = 0

    @property
    def in_use(self) -> int:
        """Pixels reserved by running decodes right now."""
        return self.pixels - self._free

    async def run(
        self, pixels: int, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Reserve ``pixels``, run ``function(*args, **kwargs)`` in a thread, return its result.

        Args:
            pixels: What the call holds at most; more than the whole budget counts as all of it.
            function: The blocking decode.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Raises:
            RuntimeError: the budget was closed.
            Exception: whatever ``function`` raised.
        """
        cost = min(max(1, pixels), self.pixels)
        await self._reserve(cost)
        loop = asyncio.get_running_loop()
        try:
            job: Future[T] = self._executor.submit(function, *args, **kwargs)
        except BaseException:
            self._release(cost)
            raise

        def finished(_: Future[T]) -> None:
            # Runs in the decoding thread (or in this one if the job never started).
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits now
                loop.call_soon_threadsafe(self._release, cost)

        job.add_done_callback(finished)
        # Cancelling the wrapper cancels a job still queued; a running one ends on its own.
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        """Refuse new decodes and drop queued ones; decodes already running finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _reserve(self, cost: int) -> None:
        if not self._waiting and cost <= self._free:
            self._take(cost)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (cost, waiter)
        self._waiting.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(cost)  # granted just as the caller gave up: hand it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)
                self._grant()  # those behind it may fit now
            raise

    def _take(self, cost: int) -> None:
        self._free -= cost
        self.peak = max(self.peak, self.pixels - self._free)

    def _release(self, cost: int) -> None:
        self._free += cost
        self._grant()

    def _grant(self) -> None:
        """Wake waiters in order while the first one fits."""
        while self._waiting:
            cost, waiter = self._waiting[0]
            if waiter.done():  # its caller was cancelled
                self._waiting.popleft()
                continue
            if cost > self._free:
                return
            self._waiting.popleft()
            self._take(cost)
            waiter.set_result(None)
