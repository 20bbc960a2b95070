"""Provides :class:`SessionCore`: a session's request bookkeeping, with no I/O at all.

In the spirit of the websockets library's sans-I/O protocol: frames come in through
:meth:`SessionCore.receive_frame`, and what they mean comes out of
:meth:`SessionCore.events_received` (replies, failed requests, server events, token changes, the
handshake's outcome) and :meth:`SessionCore.data_to_send` (frames to write). The core owns the
request ids, the table of requests waiting for a reply, their re-send after a reconnect, and the
hello and token resume that open every connection. It never reads a clock, a socket or a task:
:class:`~protocol.client.Session` is the asyncio glue that opens connections, moves the frames and
turns replies into the results its callers await, and unit tests drive the core frame by frame.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Final, TypeVar

import msgspec

from protocol import codec
from protocol.errors import PixmartError, Unauthenticated, error_class
from protocol.messages.accounts import Resume, Resumed, SessionEnded, SessionEndReason, UserInfo
from protocol.messages.base import (
    PROTOCOL_VERSION,
    Capabilities,
    ErrorReply,
    Event,
    Hello,
    Message,
    Reply,
    Request,
    Welcome,
)

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Reply)

#: The largest frame the client reads from a server.
MAX_INCOMING_BYTES: Final = 64 * 1024 * 1024


class ProtocolViolation(PixmartError):
    """The server answered with a message of the wrong type."""


# -- what the core reports -------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyReceived:
    """The reply to request ``request_id`` (an error reply too: see :func:`unwrap`)."""

    request_id: int
    reply: Reply


@dataclass(frozen=True)
class RequestFailed:
    """Request ``request_id`` will get no reply: ``error`` is its outcome."""

    request_id: int
    error: PixmartError


@dataclass(frozen=True)
class EventReceived:
    """An event the server sent (after the core took note of a session it ended)."""

    event: Event


@dataclass(frozen=True)
class TokenChanged:
    """The session token changed: a login, a logout, or the server ended the session."""

    token: str | None


@dataclass(frozen=True)
class HandshakeDone:
    """The connection is greeted (and the token resumed, or found dead): requests flow."""


@dataclass(frozen=True)
class HandshakeFailed:
    """The server refused the hello or the resume; the connection is of no use."""

    error: PixmartError


CoreEvent = (
    ReplyReceived | RequestFailed | EventReceived | TokenChanged | HandshakeDone | HandshakeFailed
)


class SessionCore:
    """Request ids, the pending table, re-send and resume, for one session across connections.

    The glue calls :meth:`connection_made` on every new connection and sends what
    :meth:`data_to_send` returns; feeds each frame read to :meth:`receive_frame` and acts on
    :meth:`events_received`; calls :meth:`connection_lost` when the connection ends. Requests wait
    in the pending table until answered, failed or forgotten, and are sent again on the next
    connection once its handshake is done, so a drop loses none (the server answers a retried
    request from its replay cache, so it takes effect once).

    Args:
        client_id: this client's id for the server's replay cache.
        client_name: shown in the server's logs.
        token: a session token from an earlier login to resume with.
    """

    def __init__(self, *, client_id: str, client_name: str, token: str | None = None) -> None:
        self.client_id = client_id
        self.client_name = client_name
        #: The session token; ``None`` when logged out.
        self.token = token
        #: Who is logged in, as the server last said.
        self.user: UserInfo | None = None
        #: Why the server last ended this session's login (``None`` after a login).
        self.end_reason: SessionEndReason | None = None
        #: What the server said it can do, from the latest hello.
        self.capabilities: Capabilities | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, bytes] = {}
        self._handshake: dict[int, type[Welcome] | type[Resumed]] = {}
        self._ready = False
        self._events: list[CoreEvent] = []
        self._outgoing: list[bytes] = []

    # -- the connection ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the current connection is greeted, so requests go out as they are made."""
        return self._ready

    @property
    def pending(self) -> frozenset[int]:
        """The ids of the requests waiting for a reply."""
        return frozenset(self._pending)

    def connection_made(self) -> None:
        """A new connection is open: greet the server (the hello is the first frame to send)."""
        self._ready = False
        self._handshake.clear()
        self._outgoing.clear()
        hello = Hello(
            id=next(self._ids),
            version=PROTOCOL_VERSION,
            client_id=self.client_id,
            client_name=self.client_name,
        )
        self._handshake[hello.id] = Welcome
        self._outgoing.append(codec.encode(hello))

    def connection_lost(self) -> None:
        """The connection ended: hold every pending request for the next one."""
        self._ready = False
        self._handshake.clear()
        self._outgoing.clear()  # what was not written yet goes again after the next handshake

    # -- requests ------------------------------------------------------------------------------

    def send_request(self, request: Request) -> int:
        """Give ``request`` an id and hold it until answered; it is sent now if the connection is
        ready, otherwise once one is. Returns the id.

        Raises:
            Unauthenticated: not logged in and the frame is larger than the server reads before a
                login (it would cut the connection instead of answering).
        """
        request = msgspec.structs.replace(request, id=next(self._ids))
        frame = codec.encode(request)
        if self.user is None and len(frame) > codec.MAX_PRELOGIN_MESSAGE_BYTES:
            raise Unauthenticated("Log in first")
        self._pending[request.id] = frame
        if self._ready:
            self._outgoing.append(frame)
        return request.id

    def forget(self, request_id: int) -> None:
        """Stop waiting for ``request_id`` (answered, cancelled or timed out); a late reply to it
        is dropped."""
        self._pending.pop(request_id, None)

    def fail_pending(self, error: PixmartError) -> None:
        """Give up every pending request with ``error`` (the session is closed for good)."""
        for request_id in self._pending:
            self._events.append(RequestFailed(request_id, error))
        self._pending.clear()

    # -- the login -----------------------------------------------------------------------------

    def logged_in(self, user: UserInfo, token: str) -> None:
        """A login (or a password change) gave this session ``user`` and a new ``token``."""
        self.user = user
        self.end_reason = None
        self._set_token(token)

    def logged_out(self) -> None:
        """The person logged out: no user, no token."""
        self.user = None
        self._set_token(None)

    def _set_token(self, token: str | None) -> None:
        self.token = token
        self._events.append(TokenChanged(token))

    # -- frames in -----------------------------------------------------------------------------

    def receive_frame(self, frame: bytes | str) -> None:
        """Take in one frame from the server; an undecodable one is logged and dropped (during
        the handshake it fails the handshake)."""
        try:
            message = codec.decode(frame, max_bytes=MAX_INCOMING_BYTES)
        except PixmartError as exc:
            if self._handshake:
                self._events.append(HandshakeFailed(exc))  # not a pixmart server, it seems
            else:
                log.warning("undecodable frame from the server ignored")
            return
        self._route(message)

    def _route(self, message: Message) -> None:
        if isinstance(message, Reply):
            if message.id in self._handshake:
                self._handshake_reply(message)
            elif self._pending.pop(message.id, None) is not None:
                self._events.append(ReplyReceived(message.id, message))
            # Otherwise a reply nobody waits for: a duplicate, or one to a forgotten request.
        elif isinstance(message, Event):
            if isinstance(message, SessionEnded):
                # Logged out by the server (password changed, logout elsewhere, expiry, an
                # admin): the token is dead, so a reconnect must not resume with it.
                self.end_reason = message.reason
                self.user = None
                self._set_token(None)
            self._events.append(EventReceived(message))

    def _handshake_reply(self, reply: Reply) -> None:
        expect = self._handshake.pop(reply.id)
        try:
            answer = unwrap(reply, expect)
        except Unauthenticated as exc:
            if expect is not Resumed:
                self._events.append(HandshakeFailed(exc))
                return
            # The session ended (expired, revoked): carry on logged out; the UI asks again.
            self.user = None
            self._set_token(None)
            self._handshake_done()
            return
        except PixmartError as exc:
            self._events.append(HandshakeFailed(exc))
            return
        if isinstance(answer, Welcome):
            self.capabilities = answer.capabilities
            if self.token is None:
                self._handshake_done()
                return
            resume = Resume(id=next(self._ids), token=self.token)
            self._handshake[resume.id] = Resumed
            self._outgoing.append(codec.encode(resume))
        else:
            self.user = answer.user
            self._handshake_done()

    def _handshake_done(self) -> None:
        self._ready = True
        self._events.append(HandshakeDone())
        for request_id, frame in list(self._pending.items()):
            if self.user is None and len(frame) > codec.MAX_PRELOGIN_MESSAGE_BYTES:
                # Not logged in after all (the session ended): the server would cut this frame
                # unread and the re-send would repeat forever; it needs a login anyway.
                del self._pending[request_id]
                self._events.append(RequestFailed(request_id, Unauthenticated("Log in first")))
                continue
            self._outgoing.append(frame)

    # -- what comes out ------------------------------------------------------------------------

    def events_received(self) -> list[CoreEvent]:
        """What happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """The frames to write to the connection, in order, since the last call."""
        frames, self._outgoing = self._outgoing, []
        return frames


def unwrap(reply: Reply, expect: type[R]) -> R:
    """The reply as the type asked for.

    Raises:
        PixmartError: the typed error the server replied with.
        ProtocolViolation: the server answered with another type.
    """
    if isinstance(reply, ErrorReply):
        raise error_class(reply.code)(
            reply.message, retry_after=reply.retry_after, details=reply.details
        )
    if not isinstance(reply, expect):
        raise ProtocolViolation(f"Expected {expect.__name__}, got {type(reply).__name__}")
    return reply


__all__ = [
    "MAX_INCOMING_BYTES",
    "CoreEvent",
    "EventReceived",
    "HandshakeDone",
    "HandshakeFailed",
    "ProtocolViolation",
    "ReplyReceived",
    "RequestFailed",
    "SessionCore",
    "TokenChanged",
    "unwrap",
]
