"""Provides the replay cache shared by every server instance on one PostgreSQL database.

A client whose link drops reconnects, through the balancer, to whichever instance answers and
re-sends the requests that had no reply. Kept in one process's memory (:class:`ReplayCache`),
a checkout applied by the instance that died, or by the one still running, would be applied
again by the other. Here every instance claims a request in the ``replay_replies`` table first:

1. Claim: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` (the update only over an expired row,
   or over a claim whose instance is dead). PostgreSQL's unique key lets exactly one of the
   instances racing on a request insert it; that one runs the request.
2. The winner stores the encoded reply, or deletes its claim if the request failed: a failure
   changed nothing, so its retry may run again (as in memory).
3. Any other arrival reads the row: a stored reply is answered at once; a claim still in flight
   is polled until it has a reply, is gone (failed: claim again) or its instance is dead.

An instance is alive while it holds its *owner lock*: a session-level advisory lock on a
connection of its own, taken in :meth:`PostgresReplayCache.start`. A killed instance's
connection closes and PostgreSQL drops the lock, so its claims are taken over at once instead of
after a timeout. Requests that carry a credential (``private``) and anonymous ones stay in an
in-memory cache (see :class:`~backend.dispatch.Route`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

import asyncpg

from backend.replay import REPLAY_TTL, Compute, ReplayCache
from backend.storage.postgres import PostgresDatabase
from protocol import codec
from protocol.errors import Conflict, Unavailable
from protocol.messages.base import Reply

log = logging.getLogger(__name__)

#: Replies kept per user (across client sessions: client ids cost nothing); the oldest go.
PER_USER: Final = 512
#: Seconds between polls of a request in flight on another instance: doubling up to the max.
POLL_FIRST: Final = 0.02
POLL_MAX: Final = 0.25
#: Seconds a retry waits for a request in flight on a live instance before it is told to come
#: back later (the instance is alive but could not store the reply, or the request is slow).
MAX_WAIT: Final = 30.0
#: Every so many stored replies, up to GC_BATCH expired rows of any user are deleted.
GC_EVERY: Final = 64
GC_BATCH: Final = 1000

_Key = tuple[str, int, int]

# One statement: claim the request, or read what holds it. Returns no row when the holder
# committed after this statement's snapshot was taken (ask again).
_CLAIM: Final = """
WITH claimed AS (
    INSERT INTO replay_replies AS r
        (client_id, user_id, request_id, fingerprint, owner, created_at, reply)
    VALUES ($1, $2, $3, $4, $5, $6, NULL)
    ON CONFLICT (client_id, user_id, request_id) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, owner = EXCLUDED.owner,
            created_at = EXCLUDED.created_at, reply = NULL
        WHERE r.created_at < $7
           OR (r.reply IS NULL AND r.fingerprint = EXCLUDED.fingerprint AND NOT EXISTS (
                SELECT 1 FROM pg_locks l
                 WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
                   AND l.classid::bigint = (r.owner >> 32)
                   AND l.objid::bigint = (r.owner & 4294967295)))
    RETURNING TRUE AS mine, fingerprint, reply
)
SELECT mine, fingerprint, reply FROM claimed
UNION ALL
SELECT FALSE, fingerprint, reply FROM replay_replies
 WHERE client_id = $1 AND user_id = $2 AND request_id = $3
   AND NOT EXISTS (SELECT 1 FROM claimed)
"""

_STORE: Final = """
UPDATE replay_replies SET reply = $5, created_at = $6
 WHERE client_id = $1 AND user_id = $2 AND request_id = $3 AND owner = $4
"""

_RELEASE: Final = """
DELETE FROM replay_replies
 WHERE client_id = $1 AND user_id = $2 AND request_id = $3 AND owner = $4 AND reply IS NULL
"""

# Keeps the newest PER_USER replies of one user (claims in flight are never trimmed).
_TRIM_USER: Final = """
DELETE FROM replay_replies
 WHERE (client_id, user_id, request_id) IN (
    SELECT client_id, user_id, request_id FROM replay_replies
     WHERE user_id = $1 AND reply IS NOT NULL
     ORDER BY created_at DESC OFFSET $2)
"""

_EXPIRE: Final = """
DELETE FROM replay_replies
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM replay_replies WHERE created_at < $1 LIMIT $2))
"""


class PostgresReplayCache:
    """Deduplicates requests by (client session, user, request id) across instances.

    Implements :class:`~backend.replay.Replay`; call :meth:`start` after the database is open
    and :meth:`close` before it closes.
    """

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        ttl: float = REPLAY_TTL,
        per_user: int = PER_USER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._per_user = per_user
        self._clock = clock
        #: Credential-bearing and anonymous requests: deduplicated by this process only.
        self._local = ReplayCache(ttl)
        #: This instance's owner lock key: positive, 62 bits, random (no registry needed).
        self.owner = secrets.randbits(62)
        self._owner_conn: asyncpg.Connection[Any] | None = None
        #: Requests this instance is resolving, so a retry arriving here joins the same work.
        self._running: dict[_Key, tuple[bytes, asyncio.Task[Reply]]] = {}
        self._stored = 0

    async def start(self) -> None:
        """Take the owner lock on a connection of its own, held until :meth:`close`."""
        conn = await asyncpg.connect(self._db.url)
        await conn.execute("SELECT pg_advisory_lock($1)", self.owner)
        self._owner_conn = conn

    async def close(self) -> None:
        """Drop the owner lock: claims this instance left in flight may be taken over."""
        if self._owner_conn is not None:
            conn, self._owner_conn = self._owner_conn, None
            await conn.close()

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
        """Return the reply for this request, computing it only the first time any instance
        sees it (see :class:`~backend.replay.Replay`).

        Raises:
            Conflict: the id was already used by this client and user for another request.
        """
        if private or user_id is None or self._owner_conn is None:
            return await self._local.run(client_id, user_id, request_id, fingerprint, compute)
        key = (client_id, user_id, request_id)
        running = self._running.get(key)
        if running is not None:
            if running[0] != fingerprint:
                raise _reused(request_id)
            return await asyncio.shield(running[1])
        task = asyncio.ensure_future(self._resolve(key, fingerprint, compute))
        self._running[key] = (fingerprint, task)
        task.add_done_callback(lambda done: self._finished(key, done))
        # shield: a waiter cancelled (its link dropped again) must not cancel the work.
        return await asyncio.shield(task)

    def _finished(self, key: _Key, task: asyncio.Task[Reply]) -> None:
        held = self._running.get(key)
        if held is not None and held[1] is task:
            del self._running[key]
        # The first waiter may be gone; mark the outcome as retrieved.
        if not task.cancelled():
            task.exception()

    async def _resolve(self, key: _Key, fingerprint: bytes, compute: Compute) -> Reply:
        """Claim the request and run it, or wait for the instance that holds it."""
        delay = POLL_FIRST
        deadline = time.monotonic() + MAX_WAIT
        while True:
            now = self._clock()
            row = await self._db.fetchone(
                _CLAIM, *key, fingerprint, self.owner, now, now - self._ttl
            )
            if row is not None:
                if row["mine"]:
                    return await self._compute(key, compute)
                if bytes(row["fingerprint"]) != fingerprint:
                    raise _reused(key[2])
                if row["reply"] is not None:
                    return _decode(bytes(row["reply"]))
            if time.monotonic() >= deadline:
                raise Unavailable(
                    "This request is still being processed; try again shortly", retry_after=1.0
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def _compute(self, key: _Key, compute: Compute) -> Reply:
        """Run the claimed request; store its reply, or give the claim up if it failed."""
        try:
            reply = await compute()
        except BaseException:
            # Only replies that took effect are kept: a failed request changed nothing.
            try:
                await self._db.execute(_RELEASE, *key, self.owner)
            except Exception:  # the claim stays; it is taken over once this instance is gone
                log.warning("could not release a replay claim", exc_info=True)
            raise
        try:
            await self._db.execute(_STORE, *key, self.owner, codec.encode(reply), self._clock())
            await self._db.execute(_TRIM_USER, key[1], self._per_user)
            self._stored += 1
            if self._stored % GC_EVERY == 0:
                await self._db.execute(_EXPIRE, self._clock() - self._ttl, GC_BATCH)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            # The request took effect: answer it. Its claim stays in flight, so a retry on
            # another instance waits and is told to come back rather than applying it again.
            log.warning("could not store a replay reply", exc_info=True)
        return reply


def _decode(data: bytes) -> Reply:
    """The reply stored as ``data`` (encoded by this protocol's codec)."""
    message = codec.decode(data, max_bytes=len(data))
    if not isinstance(message, Reply):
        raise TypeError(f"a stored reply decoded as {type(message).__name__}")
    return message


def _reused(request_id: int) -> Conflict:
    return Conflict(f"Request id {request_id} was already used for another request")
