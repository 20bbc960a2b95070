"""Provides the server-side state of one WebSocket connection and its request rate limiter."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field

from backend.auth import Principal
from backend.sent_pictures import SentPictures
from protocol import codec
from protocol.errors import RateLimited, Unauthenticated
from protocol.messages.base import Event

log = logging.getLogger(__name__)

_connection_ids = itertools.count(1)

#: Events queued for a connection that does not read them; past this the oldest are dropped.
OUTBOX_LIMIT = 256


@dataclass
class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self) -> None:
        """Spend one token or raise :class:`RateLimited` with the wait until the next one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            wait = (1.0 - self.tokens) / self.rate
            raise RateLimited("Too many requests on this connection; slow down", retry_after=wait)
        self.tokens -= 1.0


class Connection:
    """One client connection: who it is, what it subscribed to, and its event outbox."""

    def __init__(self, address: str, *, rate: float, burst: int) -> None:
        self.id = next(_connection_ids)
        self.address = address
        self.client_id: str | None = None
        self.principal: Principal | None = None
        self.topics: set[str] = set()
        self.bucket = TokenBucket(rate, burst)
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self.events_dropped = 0
        #: Why the session ended under this connection, told to requests that need a login.
        self.ended: str | None = None
        #: The pictures this connection was sent (see :class:`PictureMode.UNSENT`).
        self.pictures_sent = SentPictures()

    @property
    def user_id(self) -> int | None:
        """The authenticated user's id, or ``None``."""
        return self.principal.user_id if self.principal else None

    def require_user(self) -> Principal:
        """The authenticated principal, or :class:`Unauthenticated`."""
        if self.principal is None:
            raise Unauthenticated(self.ended or "Log in first")
        return self.principal

    def end_session(self, event: Event, message: str) -> None:
        """Log the connection out because its session ended, and queue ``event`` to say so.

        Events still queued were meant for the session that ended: they are dropped, so
        ``event`` is the last the connection hears of it.
        """
        self.principal = None
        self.ended = message
        while not self.outbox.empty():
            self.outbox.get_nowait()
        self.push_event(event)

    def push_event(self, event: Event) -> None:
        """Queue an event without blocking; a full outbox drops its oldest event."""
        frame = codec.encode(event)
        if self.outbox.full():
            # A slow reader must not make the server buffer without bound.
            self.outbox.get_nowait()
            self.events_dropped += 1
        self.outbox.put_nowait(frame)

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.address} user={self.user_id}>"
