"""Provides the PostgreSQL event bus: facts shared between instances by LISTEN/NOTIFY.

Every instance holds one connection of its own, outside the pool (a pooled connection would be
handed to queries and its LISTEN lost with it), that LISTENs on :data:`CHANNEL`. Publishing only
queues a fact; one sender task sends the queue in order with ``pg_notify``, as many facts per
round trip as are waiting, on that same connection (so a busy pool never delays an event), or
on a pooled one while it is down. A notification is JSON ``[origin, sequence, fact]``: an
instance skips its own, having delivered them already. Facts are sent after the change they
describe committed (the domains publish after their transactions).

Channels belong to one database, so shops on one PostgreSQL server never hear each other.
Facts sent while this instance's listening connection is down are lost to it: the listener
reconnects with backoff, and clients load afresh what they show whenever they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
from typing import Any, Union, cast

import asyncpg
import msgspec

from backend.eventbus import EventBus, Fact
from backend.startup import StartupError
from backend.storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)

#: The channel every pixmart instance of a database LISTENs on.
CHANNEL = "pixmart_events"
#: NOTIFY refuses payloads of 8000 bytes or more.
MAX_PAYLOAD = 7999
#: Facts waiting to be sent; beyond this (the database unreachable for long) new ones are lost.
OUTBOX_LIMIT = 10_000
#: Facts sent in one ``pg_notify`` statement at most.
MAX_BATCH = 500
#: Seconds between checks that the listening connection still answers (a half-open TCP
#: connection is otherwise noticed only when the kernel gives up on it, many minutes later).
PING_INTERVAL = 5.0
PING_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0
#: Seconds :meth:`PostgresEventBus.close` waits for queued facts to go out.
FLUSH_TIMEOUT = 2.0
#: Reconnect (and resend) backoff: doubling from the first to the last, with jitter.
BACKOFF_FIRST = 0.1
BACKOFF_LAST = 5.0

_NOTIFY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"
_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class PostgresEventBus(EventBus):
    """Shares facts with every instance on the same PostgreSQL database."""

    def __init__(self, db: PostgresDatabase, *, channel: str = CHANNEL) -> None:
        super().__init__()
        self._db = db
        self._channel = channel
        #: Tells this instance's notifications from the others'.
        self.instance_id = secrets.token_hex(8)
        self._own_prefix = msgspec.json.encode([self.instance_id]).decode()[:-1] + ","
        self._sequence = itertools.count(1)
        self._outbox: asyncio.Queue[str] | None = None
        self._listener: asyncpg.Connection[Any] | None = None
        #: One query at a time on the listening connection: pings and sends.
        self._talk = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._decoder: msgspec.json.Decoder[Any] | None = None
        self._decoder_kinds: tuple[type[Fact], ...] = ()

    @property
    def listening(self) -> bool:
        """Whether the listening connection is up (facts from other instances arrive)."""
        return self._listener is not None and not self._listener.is_closed()

    @property
    def listener_pid(self) -> int | None:
        """The PostgreSQL backend process of the listening connection (for operators, tests)."""
        listener = self._listener
        return listener.get_server_pid() if listener and not listener.is_closed() else None

    async def start(self) -> None:
        """LISTEN (a failure here fails the start: the database answered a moment ago).

        Raises:
            StartupError: PostgreSQL refused the listening connection.
        """
        try:
            self._listener = await self._listen()
        except _FAILURES as exc:
            raise StartupError(
                f"cannot listen for events on {self._db.description}: {type(exc).__name__}: {exc}",
                "each instance needs one connection beyond its pool: raise max_connections "
                "or lower the instances' pool sizes",
            ) from None
        self._outbox = asyncio.Queue(OUTBOX_LIMIT)
        self._tasks = [
            asyncio.create_task(self._keep_listening(), name="pixmart-event-listener"),
            asyncio.create_task(self._send_forever(), name="pixmart-event-sender"),
        ]

    async def flush(self) -> None:
        """Wait until every fact published so far has been sent (or given up on)."""
        if self._outbox is not None and self._tasks:
            await self._outbox.join()

    async def close(self) -> None:
        """Stop listening and sending, once queued facts went out (or after a short wait)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), FLUSH_TIMEOUT)
        self._outbox = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await asyncio.wait_for(listener.close(), PING_TIMEOUT)
            except (*_FAILURES, asyncio.CancelledError):
                listener.terminate()

    def publish(self, fact: Fact) -> None:
        """Queue ``fact`` for the other instances (dropped, logged, if it cannot be sent)."""
        outbox = self._outbox
        if outbox is None:
            return  # not started, or stopping: no instance is told by this one any more
        payload = msgspec.json.encode((self.instance_id, next(self._sequence), fact)).decode()
        if len(payload.encode()) > MAX_PAYLOAD:
            # Facts are made to fit (ids, not contents); this one is a bug to fix, not to send.
            log.error("%s too large to share (%d bytes)", type(fact).__name__, len(payload))
            return
        try:
            outbox.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("event outbox full; other instances miss a %s", type(fact).__name__)

    async def _listen(self) -> asyncpg.Connection[Any]:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self._db.url, timeout=CONNECT_TIMEOUT)
        try:
            await conn.add_listener(self._channel, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _keep_listening(self) -> None:
        """Watch the listening connection; when it is lost, connect again with backoff."""
        delay = BACKOFF_FIRST
        while True:
            conn = self._listener
            if conn is not None:
                await self._until_lost(conn)
                self._listener = None
                conn.terminate()
                log.warning("lost the connection that listens for events; reconnecting")
            try:
                self._listener = await self._listen()
            except _FAILURES as exc:
                log.warning("cannot listen for events yet: %s", type(exc).__name__)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, BACKOFF_LAST)
            else:
                log.info("listening for events again")
                delay = BACKOFF_FIRST

    async def _send_forever(self) -> None:
        """Send queued facts in order, every waiting one in one statement."""
        delay = BACKOFF_FIRST
        while (outbox := self._outbox) is not None:
            batch = [await outbox.get()]
            while len(batch) < MAX_BATCH and not outbox.empty():
                batch.append(outbox.get_nowait())
            try:
                conn = self._listener
                if conn is not None and not conn.is_closed():
                    async with self._talk:
                        await conn.execute(_NOTIFY, self._channel, batch, timeout=PING_TIMEOUT)
                else:  # the listener is reconnecting: the other instances still hear
                    await self._db.execute(_NOTIFY, self._channel, batch)
            except _FAILURES as exc:
                # Lost, like facts sent while a listener is away: clients resync on reconnect.
                log.warning("%d events not shared: %s", len(batch), type(exc).__name__)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, BACKOFF_LAST)
            else:
                delay = BACKOFF_FIRST
            finally:
                for _ in batch:
                    outbox.task_done()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        if not isinstance(payload, str) or payload.startswith(self._own_prefix):
            return  # delivered by this instance as it happened
        try:
            _origin, _sequence, fact = self._decoder_for_kinds().decode(payload)
        except (msgspec.DecodeError, ValueError) as exc:
            # e.g. a kind of fact only a newer pixmart knows, during a rolling upgrade.
            log.warning("ignored an event from another instance: %s", exc)
            return
        self.receive(fact)

    async def _until_lost(self, conn: asyncpg.Connection[Any]) -> None:
        """Return once ``conn`` is closed or stops answering."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_INTERVAL)
                return
            try:
                async with self._talk:
                    await conn.execute("SELECT 1", timeout=PING_TIMEOUT)
            except _FAILURES:
                return

    def _decoder_for_kinds(self) -> msgspec.json.Decoder[Any]:
        kinds = self.kinds
        if self._decoder is None or kinds != self._decoder_kinds:
            if not kinds:
                raise ValueError("no kinds of fact registered")
            union = cast(Any, Union)[kinds]
            self._decoder = msgspec.json.Decoder(tuple[str, int, union])  # type: ignore[valid-type]
            self._decoder_kinds = kinds
        return self._decoder


def event_bus_for(db: object) -> EventBus:
    """The bus for a server on ``db``: LISTEN/NOTIFY on PostgreSQL, a no-op bus on SQLite."""
    return PostgresEventBus(db) if isinstance(db, PostgresDatabase) else EventBus()
