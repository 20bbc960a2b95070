"""Provides :class:`PasswordWork`: Argon2id hashing and checking, a bounded amount at a time.

One Argon2id run takes about 30 ms of one core and 19 MiB. Logins and account creations arrive
from anyone, before any session exists, so without a bound a flood of them occupies every core
(the default thread pool runs several at once) and everyone's requests wait behind it. Here:

* at most ``workers`` runs happen at once, server-wide (sized to leave the event loop a core);
* at most ``max_waiting`` more wait for a turn; past that a request is answered ``rate_limited``
  with a retry-after estimated from the queue, instead of queueing without end;
* one client address may hold at most ``per_address`` of the running and waiting places, so a
  flood from one address fills its own share and not the queue everyone else needs;
* new passwords (account creation, which needs no account) may hold at most half of the
  waiting places, so a sign-up flood from many addresses still leaves logins room.

Refusals happen before any work, so an unknown user and a wrong password still get the same
answer after the same work whenever the check runs.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable
from typing import Final, TypeVar

from backend.accounts import passwords
from protocol.errors import RateLimited

T = TypeVar("T")

#: The first guess of one run's duration, before any was measured.
_INITIAL_SECONDS: Final = 0.03
#: Weight of the latest run in the moving average of run durations.
_SMOOTHING: Final = 0.2
#: Bounds of the retry-after given when the queue is full: long enough that a retry finds room,
#: short enough that the client's automatic retry (up to 2 s) handles it without bothering
#: the person.
_MIN_RETRY: Final = 0.2
_MAX_RETRY: Final = 2.0


class PasswordWork:
    """Runs Argon2id in worker threads, a bounded number at once, with a bounded queue.

    Args:
        workers: Runs at once, server-wide.
        max_waiting: Requests allowed to wait for a turn; more are refused.
        per_address: Running plus waiting requests allowed per client address.
    """

    def __init__(self, *, workers: int, max_waiting: int, per_address: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.max_waiting = max_waiting
        self.per_address = per_address
        self._slots = asyncio.Semaphore(workers)
        self._waiting = 0
        self._waiting_new_passwords = 0
        self._by_address: dict[str, int] = {}
        self._seconds = _INITIAL_SECONDS
        #: Runs finished (hashes and checks), and requests refused because the queue was full;
        #: for metrics and tests.
        self.runs = 0
        self.refused = 0

    async def hash(self, password: str, address: str) -> str:
        """A PHC-encoded Argon2id hash of ``password`` (see :func:`passwords.hash_password`).

        Raises:
            RateLimited: too much password work is waiting already.
        """
        if self._waiting_new_passwords >= max(1, self.max_waiting // 2):
            self.refused += 1
            raise self._busy()
        self._waiting_new_passwords += 1
        try:
            # Looked up through the module at call time, so tests may patch the cost knobs.
            return await self._run(address, passwords.hash_password, password)
        finally:
            self._waiting_new_passwords -= 1

    async def verify(self, password: str, encoded: str, address: str) -> bool:
        """Whether ``password`` matches ``encoded`` (see :func:`passwords.verify_password`).

        Raises:
            RateLimited: too much password work is waiting already.
        """
        return await self._run(address, passwords.verify_password, password, encoded)

    async def _run(self, address: str, work: Callable[..., T], *args: str) -> T:
        held = self._by_address.get(address, 0)
        if self._waiting >= self.max_waiting or held >= self.per_address:
            self.refused += 1
            raise self._busy()
        self._by_address[address] = held + 1
        self._waiting += 1
        try:
            await self._slots.acquire()
        except BaseException:
            self._waiting -= 1
            self._leave(address)
            raise
        self._waiting -= 1
        started = time.perf_counter()

        def finished(_: object) -> None:
            # Runs when the thread is really done, even if the request was cancelled meanwhile
            # (its client dropped): the slot stays taken as long as the core is busy.
            self._slots.release()
            self._leave(address)
            self._seconds += _SMOOTHING * (time.perf_counter() - started - self._seconds)
            self.runs += 1

        try:
            call = functools.partial(work, *args)
            future = asyncio.get_running_loop().run_in_executor(None, call)
        except BaseException:
            finished(None)
            raise
        future.add_done_callback(finished)
        return await asyncio.shield(future)

    def _leave(self, address: str) -> None:
        remaining = self._by_address[address] - 1
        if remaining:
            self._by_address[address] = remaining
        else:
            del self._by_address[address]

    def _busy(self) -> RateLimited:
        retry = min(_MAX_RETRY, max(_MIN_RETRY, self._expected_wait()))
        return RateLimited(
            "The server is busy checking passwords; try again shortly",
            retry_after=math.ceil(retry * 10) / 10,
        )

    def _expected_wait(self) -> float:
        """Seconds until a request joining the queue now would start, by the recent average."""
        return (self._waiting + self.workers) / self.workers * self._seconds
