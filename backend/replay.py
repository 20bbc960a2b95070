"""Provides the replay cache that makes a retried request take effect once.

A client that loses its link re-sends the requests that had no answer, with the same ids, from the
same client session (its ``client_id``). The cache remembers the reply (or the running task) for
each (client_id, user, request id), so a retried checkout or upload is applied once and answered
twice.

The user is part of the key because the client id is only the client's word: anyone may present
another client's id in their hello. Keyed by the client id alone, a second user re-sending the
first user's requests byte for byte was answered with the first user's cart and order.

This cache lives in one process's memory, which is all a SQLite server needs; instances sharing
one PostgreSQL database share their replays through it instead (:mod:`backend.replay_postgres`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from protocol.errors import Conflict
from protocol.messages.base import Reply

#: How long, and how many, replies per client session (and user) are kept.
REPLAY_TTL = 600.0
PER_CLIENT = 512
MAX_CLIENTS = 20_000
#: Replies kept in all, whatever the number of client sessions: client ids cost nothing (each
#: hello may name a new one), so without this bound a flood of requests grows the cache to
#: gigabytes. About 1 KB each.
MAX_ENTRIES = 50_000

#: Whose replies share one request-id space: the client session and the user it is logged in
#: as (``None`` before a login).
_ClientKey = tuple[str, int | None]

#: Runs a request the first time it is seen.
Compute = Callable[[], Awaitable[Reply]]


class Replay(Protocol):
    """What the dispatcher needs of a replay cache: in memory (one SQLite server) or shared by
    every instance on one PostgreSQL database (:mod:`backend.replay_postgres`).
    """

    async def run(
        self,
        client_id: str,
        user_id: int | None,
        request_id: int,
        fingerprint: bytes,
        compute: Compute,
        *,
        private: bool = False,
    ) -> Reply:
        """Return the reply for this request, computing it only the first time it is seen.

        ``private``: the request or its reply carries a credential (a password, a session
        token), so nothing of it may leave this process (see :class:`ReplayCache`).
        """
        ...


class _Entry:
    __slots__ = ("fingerprint", "created", "task")

    def __init__(self, fingerprint: bytes, task: asyncio.Task[Reply]) -> None:
        self.fingerprint = fingerprint
        self.created = time.monotonic()
        self.task = task


class ReplayCache:
    """Deduplicates requests by (client session, user, request id)."""

    def __init__(self, ttl: float = REPLAY_TTL, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clients: OrderedDict[_ClientKey, OrderedDict[int, _Entry]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        """Replies (or running requests) kept right now."""
        return self._count

    async def run(
        self,
        client_id: str,
        user_id: int | None,
        request_id: int,
        fingerprint: bytes,
        compute: Compute,
        *,
        private: bool = False,
    ) -> Reply:
        """Return the reply for this request, computing it only the first time it is seen.

        Args:
            client_id: The client session the hello named.
            user_id: Who the connection is logged in as when the request arrives (``None``
                before a login); a retry is answered from the cache only for the same user.
            request_id: The request's id, unique within the client session.
            fingerprint: A digest of the request's frame, to tell a retry from id reuse.
            compute: Runs the request the first time.
            private: Whether the request or reply carries a credential; all of this cache is
                in this process's memory, so it changes nothing here.

        Raises:
            Conflict: when the id was already used by this client and user for a different
                request.
        """
        key = (client_id, user_id)
        entries = self._clients.get(key)
        if entries is None:
            entries = self._clients[key] = OrderedDict()
        else:
            self._clients.move_to_end(key)
        self._expire(entries)
        entry = entries.get(request_id)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise Conflict(f"Request id {request_id} was already used for another request")
            # shield: a second waiter that is cancelled (its link dropped again) must not cancel
            # the work the first one started.
            return await asyncio.shield(entry.task)
        task: asyncio.Task[Reply] = asyncio.ensure_future(compute())
        entries[request_id] = _Entry(fingerprint, task)
        self._count += 1
        # Only replies that took effect are worth keeping: a request that failed changed
        # nothing, so its retry may simply run again. Refusals are most of what a flood
        # produces, and each held an exception with its traceback.
        task.add_done_callback(lambda done: self._forget_failure(key, request_id, done))
        while len(entries) > PER_CLIENT:
            self._drop_oldest(entries)
        self._bound()
        return await asyncio.shield(task)

    def _forget_failure(self, key: _ClientKey, request_id: int, task: asyncio.Task[Reply]) -> None:
        # The first waiter may be gone (its link dropped); mark the outcome as retrieved.
        if task.cancelled() or task.exception() is not None:
            entries = self._clients.get(key)
            entry = entries.get(request_id) if entries is not None else None
            if entries is not None and entry is not None and entry.task is task:
                del entries[request_id]
                self._count -= 1
                if not entries:
                    del self._clients[key]

    def _drop_oldest(self, entries: OrderedDict[int, _Entry]) -> None:
        entries.popitem(last=False)
        self._count -= 1

    def _bound(self) -> None:
        """Drop the least recently used client sessions while over either bound."""
        while self._clients and (
            len(self._clients) > MAX_CLIENTS or self._count > self._max_entries
        ):
            _, entries = self._clients.popitem(last=False)
            self._count -= len(entries)

    def _expire(self, entries: OrderedDict[int, _Entry]) -> None:
        cutoff = time.monotonic() - self._ttl
        while entries:
            first = next(iter(entries.values()))
            if first.created >= cutoff or not first.task.done():
                break
            self._drop_oldest(entries)
