"""Provides :class:`BacklogDrain`: the background task that matches the items of the backlog.

Items to match wait in the database (``alert_backlog``), queued by triggers in the very
transaction that lists or changes them, so an acknowledged write is matched even if the server
that made it is killed a moment later. The drain takes the entries that are due, oldest first,
and hands each to a matching (:meth:`AlertMatcher.match_entry`) that records the alerts, stores
their notices and deletes (or postpones) the entry in one transaction: a crash at any point
leaves either the entry (matched again after the restart; no notice was sent) or its notices,
never both, never neither.

When it runs: at start (leftovers of a server that died), when this instance wrote an item
(:meth:`BacklogDrain.wake`), and every :data:`POLL_SECONDS` (entries another instance of the
cluster wrote and never matched, and postponed ones). On PostgreSQL each entry is claimed with
``FOR UPDATE SKIP LOCKED``, so of the instances exactly one settles it; a SQLite database has one
server.

Bounds: the backlog holds at most its capacity (``alert_backlog_state.capacity``, 50,000); past
it, new or changed items are not queued (so not matched: they alert nobody) and counted, and the
drain logs that count as a warning. A matching that fails is retried with a growing delay and
given up (logged) after :data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from backend.alerts.repository import AlertRepository, BacklogEntry

log = logging.getLogger(__name__)

#: Seconds between looks at the backlog when nothing woke the drain.
POLL_SECONDS: Final = 5.0
#: Entries read at a time.
BATCH: Final = 100
#: Failed matchings of one entry before it is given up.
MAX_ATTEMPTS: Final = 5
#: The longest delay before a failed matching is tried again, in seconds.
MAX_RETRY_SECONDS: Final = 60.0

#: Matches one entry and settles it; ``False`` if it was not this instance's to settle (taken
#: by another, or its item changed meanwhile).
MatchEntry = Callable[[BacklogEntry], Awaitable[bool]]


class BacklogDrain:
    """Drains the backlog in the background: one task per instance.

    Args:
        repository: The backlog.
        match_entry: Matches one entry and settles it in the same transaction.
        poll_seconds: Seconds between looks when nothing wakes it.
    """

    def __init__(
        self,
        repository: AlertRepository,
        match_entry: MatchEntry,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._repository = repository
        self._match_entry = match_entry
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._passes = asyncio.Condition()
        self._started = 0
        self._finished = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start draining, beginning with whatever the backlog holds now."""
        self._task = asyncio.create_task(self._run(), name="pixmart-alerts-backlog")

    async def stop(self) -> None:
        """Stop draining; an entry being matched is rolled back and stays for the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def running(self) -> bool:
        """Whether the drain runs (started and not stopped)."""
        return self._task is not None

    def wake(self) -> None:
        """Look at the backlog now (an item was just written here); never blocks."""
        self._wake.set()

    async def idle(self) -> None:
        """Wait until no entry of the backlog is due (those waiting for an embedding or a retry
        are not) and none is being matched.

        Raises:
            RuntimeError: the drain is not running.
        """
        while True:
            if self._task is None:
                raise RuntimeError("the alert backlog is not being drained")
            async with self._passes:
                wanted = self._started + 1  # a pass that starts after this call
                self.wake()
                await self._passes.wait_for(functools.partial(self._finished_pass, wanted))
            if not await self._repository.due(1):
                return
            await asyncio.sleep(0.02)  # due entries another instance holds: look again

    def _finished_pass(self, number: int) -> bool:
        return self._finished >= number

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            async with self._passes:
                self._started += 1
            try:
                await self._log_overflow()
                await self._drain()
            except Exception:  # the database may be away for a while: try again later
                log.exception("saved searches: reading the alert backlog failed")
            async with self._passes:
                self._finished += 1
                self._passes.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def _drain(self) -> None:
        """Match the due entries until none is left that this instance may take."""
        while entries := await self._repository.due(BATCH):
            settled = 0
            for entry in entries:
                settled += await self._settle(entry)
            if not settled:
                return  # all of them held by other instances or changed: look again later

    async def _settle(self, entry: BacklogEntry) -> bool:
        try:
            return await self._match_entry(entry)
        except Exception:  # one item's failure must not stop the alerts of the next
            attempts = entry.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                log.exception(
                    "saved searches: matching item %d failed %d times; given up, it alerts nobody",
                    entry.item_id,
                    attempts,
                )
                await self._repository.discard(entry)
            else:
                log.exception(
                    "saved searches: matching item %d failed (attempt %d of %d)",
                    entry.item_id,
                    attempts,
                    MAX_ATTEMPTS,
                )
                delay = min(MAX_RETRY_SECONDS, 2.0**attempts)
                await self._repository.retry_later(entry, delay, failed=True)
            return True

    async def _log_overflow(self) -> None:
        overflow = await self._repository.take_overflow()
        if overflow is not None:
            log.warning(
                "saved searches: the alert backlog was full (%d items); %d new or changed items"
                " were not queued for matching and alert nobody (the last: item %s)",
                overflow.capacity,
                overflow.dropped,
                overflow.last_item_id,
            )
