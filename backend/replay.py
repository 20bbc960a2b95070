"""Provides the replay cache that makes a retried request take effect once.

A client that loses its link re-sends the requests that had no answer, with the same ids, from the
same client session (its ``client_id``). The cache remembers the reply (or the running task) for
each (client_id, request id), so a retried checkout or upload is applied once and answered twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from protocol.errors import Conflict
from protocol.messages.base import Reply

#: How long, and how many, replies per client session are kept.
REPLAY_TTL = 600.0
PER_CLIENT = 512
MAX_CLIENTS = 20_000


class _Entry:
    __slots__ = ("fingerprint", "created", "task")

    def __init__(self, fingerprint: bytes, task: asyncio.Task[Reply]) -> None:
        self.fingerprint = fingerprint
        self.created = time.monotonic()
        self.task = task


class ReplayCache:
    """Deduplicates requests by (client session, request id)."""

    def __init__(self, ttl: float = REPLAY_TTL) -> None:
        self._ttl = ttl
        self._clients: OrderedDict[str, OrderedDict[int, _Entry]] = OrderedDict()

    async def run(
        self,
        client_id: str,
        request_id: int,
        fingerprint: bytes,
        compute: Callable[[], Awaitable[Reply]],
    ) -> Reply:
        """Return the reply for this request, computing it only the first time it is seen.

        Raises:
            Conflict: when the id was already used by this client for a different request.
        """
        entries = self._clients.get(client_id)
        if entries is None:
            entries = self._clients[client_id] = OrderedDict()
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client_id)
        self._expire(entries)
        entry = entries.get(request_id)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise Conflict(f"Request id {request_id} was already used for another request")
            # shield: a second waiter that is cancelled (its link dropped again) must not cancel
            # the work the first one started.
            return await asyncio.shield(entry.task)
        task: asyncio.Task[Reply] = asyncio.ensure_future(compute())
        # The first waiter may be gone (its link dropped); mark the outcome as retrieved.
        task.add_done_callback(_consume_outcome)
        entries[request_id] = _Entry(fingerprint, task)
        while len(entries) > PER_CLIENT:
            entries.popitem(last=False)
        return await asyncio.shield(task)

    def _expire(self, entries: OrderedDict[int, _Entry]) -> None:
        cutoff = time.monotonic() - self._ttl
        while entries:
            first = next(iter(entries.values()))
            if first.created >= cutoff or not first.task.done():
                break
            entries.popitem(last=False)


def _consume_outcome(task: asyncio.Task[Reply]) -> None:
    if not task.cancelled():
        task.exception()
