"""Provides :class:`Session`: the one persistent, self-healing connection to a pixmart server.

Used by the TUI, the scripting CLI, the tests and the benchmarks. It correlates requests and
replies by id, re-sends unanswered requests after a reconnect (the server answers a retried
request from its replay cache, so it takes effect once), resumes the login with the session
token without asking the person again, and reports its state to whoever listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from protocol import codec
from protocol.errors import (
    Forbidden,
    PixmartError,
    RateLimited,
    Unauthenticated,
    Unavailable,
    error_class,
)
from protocol.messages.accounts import (
    AccountCreated,
    ChangePassword,
    CreateAccount,
    LoggedIn,
    Login,
    Logout,
    Me,
    Resume,
    Resumed,
    SessionEnded,
    SessionEndReason,
    UserInfo,
    WhoAmI,
)
from protocol.messages.base import (
    PROTOCOL_VERSION,
    Capabilities,
    ErrorReply,
    Event,
    Hello,
    Message,
    Ok,
    Reply,
    Request,
    Welcome,
)
from protocol.money import DEFAULT_CURRENCY
from protocol.trust import TrustError, TrustPolicy, fingerprint_of_der

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Reply)


class ConnectionState(enum.StrEnum):
    """Where the connection is, as the UI shows it."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


@dataclass(frozen=True)
class ConnectionStatus:
    """A snapshot of the connection for the UI.

    Attributes:
        state: the state.
        server: ``host:port``.
        tls_version: e.g. ``"TLSv1.3"`` while connected.
        fingerprint: the server certificate's SHA-256 fingerprint while connected.
        next_attempt_at: wall-clock time of the next reconnect attempt while reconnecting.
        attempt: how many reconnect attempts failed in a row.
        reason: why the link is down (reconnecting) or given up (offline).
    """

    state: ConnectionState
    server: str = ""
    tls_version: str | None = None
    fingerprint: str | None = None
    next_attempt_at: float | None = None
    attempt: int = 0
    reason: str | None = None


class Offline(Unavailable):
    """The session is offline for good (closed, or the server can no longer be trusted)."""


class ProtocolViolation(PixmartError):
    """The server answered with a message of the wrong type."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter between reconnect attempts."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (0-based)."""
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        # Full jitter keeps a fleet of clients from reconnecting in lock-step after an outage.
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class _Pending:
    frame: bytes
    future: asyncio.Future[Reply]


@dataclass
class _Listeners:
    status: list[Callable[[ConnectionStatus], None]] = field(default_factory=list)
    events: list[Callable[[Event], None]] = field(default_factory=list)
    token: list[Callable[[str | None], None]] = field(default_factory=list)


#: A request refused for sending too fast is resent if told to wait at most this long, until
#: it has waited this long in all.
RATE_LIMIT_MAX_WAIT = 2.0
RATE_LIMIT_BUDGET = 30.0

_RETRYABLE = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, EOFError)


class Session:
    """A client session with one server, kept alive across network drops.

    Args:
        url: ``wss://host:port``; plain ``ws://`` is refused.
        trust: how to trust the server's certificate.
        token: a session token from an earlier login to resume with.
        client_name: shown in the server's logs.
        backoff: reconnect delays.
        open_timeout: seconds allowed for TCP + TLS + WebSocket handshakes.
    """

    def __init__(
        self,
        url: str,
        trust: TrustPolicy,
        *,
        token: str | None = None,
        client_name: str = "pixmart",
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "wss":
            raise ValueError(f"Only wss:// servers are supported, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"No host in {url!r}")
        self.url = url
        self.server = f"{parts.hostname}:{parts.port or 443}"
        self.trust = trust
        self.token = token
        self.client_name = client_name
        self.client_id = secrets.token_hex(16)
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.user: UserInfo | None = None
        #: Why the server last ended this session's login while connected (``None`` after a
        #: login); token listeners hear ``None`` first, the ``SessionEnded`` event follows.
        self.end_reason: SessionEndReason | None = None
        self.capabilities: Capabilities | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._ws: ClientConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._fatal: Exception | None = None
        self._listeners = _Listeners()
        self.status = ConnectionStatus(ConnectionState.DISCONNECTED, server=self.server)

    # -- observation -------------------------------------------------------------------------

    def on_status(self, listener: Callable[[ConnectionStatus], None]) -> None:
        """Call ``listener`` with every new :class:`ConnectionStatus`."""
        self._listeners.status.append(listener)

    def on_event(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every server event."""
        self._listeners.events.append(listener)

    def on_token(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener`` when the session token changes (login, logout, expiry)."""
        self._listeners.token.append(listener)

    def _set_status(self, status: ConnectionStatus) -> None:
        self.status = status
        for listener in list(self._listeners.status):
            try:
                listener(status)
            except Exception:  # a broken listener must not break the connection
                log.exception("status listener failed")

    def _set_token(self, token: str | None) -> None:
        self.token = token
        for listener in list(self._listeners.token):
            try:
                listener(token)
            except Exception:
                log.exception("token listener failed")

    @property
    def currency(self) -> str:
        """The server's currency (ISO 4217), from its hello; the default until it said."""
        capabilities = self.capabilities
        return capabilities.currency if capabilities is not None else DEFAULT_CURRENCY

    @property
    def connected(self) -> bool:
        """Whether the link is up right now."""
        return self.status.state is ConnectionState.CONNECTED

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection (and resume the token, if any), then keep it alive.

        Raises:
            TrustError: the server cannot be trusted.
            PixmartError: the server refused the hello (e.g. a protocol version mismatch).
            OSError, TimeoutError, InvalidHandshake: the server could not be reached.
        """
        if self._supervisor is not None:
            raise RuntimeError("already connected")
        self._set_status(ConnectionStatus(ConnectionState.CONNECTING, server=self.server))
        try:
            ws = await self._open_and_greet()
        except BaseException as exc:
            self._set_status(
                ConnectionStatus(ConnectionState.OFFLINE, server=self.server, reason=_describe(exc))
            )
            raise
        self._supervisor = asyncio.create_task(self._supervise(ws), name="pixmart-session")

    async def close(self) -> None:
        """Close the connection for good; pending requests fail with :class:`Offline`."""
        self._closing = True
        self._wake.set()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self._fail_pending(Offline("The session was closed"))
        self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, server=self.server))

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def reconnect_now(self) -> None:
        """Skip the rest of the current backoff delay (e.g. the person pressed a key)."""
        self._wake.set()

    def abort_transport(self) -> None:
        """Drop the TCP connection abruptly, as a network failure would (for tests and drills)."""
        if self._ws is not None:
            self._ws.transport.abort()

    # -- connection internals ----------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        try:
            ws = await connect(
                self.url,
                ssl=self.trust.ssl_context(),
                open_timeout=self.open_timeout,
                compression=None,
                max_size=64 * 1024 * 1024,
                ping_interval=15,
                ping_timeout=15,
                proxy=None,
                user_agent_header=f"pixmart/{PROTOCOL_VERSION}",
            )
        except InvalidStatus as exc:
            # The server answered the upgrade with an HTTP error: say so in words, typed.
            status = exc.response.status_code
            if status in (429, 503):
                message = (
                    "Too many connections from this address are waiting to log in"
                    if status == 429
                    else "The server is full or shutting down"
                )
                wait = _retry_after(exc.response.headers.get("Retry-After"))
                raise Unavailable(f"{message}; try again shortly", retry_after=wait) from None
            if status == 403:
                raise Forbidden("The server refused this client (origin not allowed)") from None
            raise Unavailable(f"The server refused the connection (HTTP {status})") from None
        try:
            ssl_object = ws.transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            if not der:
                raise TrustError("The server presented no certificate")
            await self.trust.check(self.server, fingerprint_of_der(der))
        except BaseException:
            ws.transport.abort()
            raise
        return ws

    async def _open_and_greet(self) -> ClientConnection:
        ws = await self._open()
        try:
            welcome = await self._direct(
                ws,
                Hello(
                    version=PROTOCOL_VERSION, client_id=self.client_id, client_name=self.client_name
                ),
                Welcome,
            )
            self.capabilities = welcome.capabilities
            if self.token is not None:
                try:
                    resumed = await self._direct(ws, Resume(token=self.token), Resumed)
                    self.user = resumed.user
                except Unauthenticated:
                    # The session ended (expired, revoked): carry on logged out; the UI asks again.
                    self.user = None
                    self._set_token(None)
        except BaseException:
            ws.transport.abort()
            raise
        self._attach(ws)
        return ws

    async def _direct(self, ws: ClientConnection, request: Request, expect: type[R]) -> R:
        """Send one request and read its reply before the reader loop runs (handshake only)."""
        request = msgspec.structs.replace(request, id=next(self._ids))
        await ws.send(codec.encode(request))
        async with asyncio.timeout(self.open_timeout):
            while True:
                message = codec.decode(await ws.recv())
                if isinstance(message, Reply) and message.id == request.id:
                    return _unwrap(message, expect)
                if isinstance(message, Event):
                    self._deliver_event(message)

    def _attach(self, ws: ClientConnection) -> None:
        unanswered = [p for p in self._pending.values() if not p.future.done()]
        self._ws = ws
        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        self._set_status(
            ConnectionStatus(
                ConnectionState.CONNECTED,
                server=self.server,
                tls_version=ssl_object.version() if ssl_object else None,
                fingerprint=fingerprint_of_der(der) if der else None,
            )
        )
        for pending in unanswered:
            if self.user is None and len(pending.frame) > codec.MAX_PRELOGIN_MESSAGE_BYTES:
                # Not logged in after all (the session ended): the server would cut this frame
                # unread and the resend would repeat forever; it needs a login anyway.
                pending.future.set_exception(Unauthenticated("Log in first"))
                continue
            asyncio.create_task(self._send_quietly(ws, pending.frame))

    async def _send_quietly(self, ws: ClientConnection, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)

    async def _supervise(self, ws: ClientConnection) -> None:
        while True:
            reason = await self._read_until_closed(ws)
            self._ws = None
            if self._closing:
                return
            try:
                ws = await self._reconnect(reason)
            except TrustError as exc:
                self._go_offline(exc)
                return

    def _go_offline(self, exc: Exception) -> None:
        self._fatal = exc
        self._set_status(
            ConnectionStatus(ConnectionState.OFFLINE, server=self.server, reason=str(exc))
        )
        self._fail_pending(Offline(str(exc)))

    async def _read_until_closed(self, ws: ClientConnection) -> str:
        try:
            async for frame in ws:
                try:
                    message = codec.decode(frame, max_bytes=64 * 1024 * 1024)
                except PixmartError:
                    log.warning("undecodable frame from the server ignored")
                    continue
                self._route(message)
        except ConnectionClosed:
            pass
        code = ws.close_code
        reason = ws.close_reason
        if code == 1001:
            return "the server is restarting"
        if code is None or code == 1006:
            return "the connection was lost"
        return f"the server closed the connection ({code}{': ' + reason if reason else ''})"

    def _route(self, message: Message) -> None:
        if isinstance(message, Reply):
            pending = self._pending.get(message.id)
            if pending is not None and not pending.future.done():
                pending.future.set_result(message)
        elif isinstance(message, Event):
            self._deliver_event(message)

    def _deliver_event(self, event: Event) -> None:
        if isinstance(event, SessionEnded):
            # Logged out by the server (password changed, logout elsewhere, expiry, an admin):
            # the token is dead, so a reconnect must not resume with it.
            self.end_reason = event.reason
            self.user = None
            self._set_token(None)
        for listener in list(self._listeners.events):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    async def _reconnect(self, reason: str) -> ClientConnection:
        attempt = 0
        while True:
            delay = self.backoff.delay(attempt)
            self._set_status(
                ConnectionStatus(
                    ConnectionState.RECONNECTING,
                    server=self.server,
                    next_attempt_at=time.time() + delay,
                    attempt=attempt,
                    reason=reason,
                )
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if self._closing:
                raise asyncio.CancelledError
            try:
                return await self._open_and_greet()
            except TrustError:
                raise
            except PixmartError as exc:
                reason = exc.message
            except _RETRYABLE as exc:
                reason = _describe(exc)
            attempt += 1

    def _fail_pending(self, exc: Exception) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
                # Retrieved here so an abandoned request does not log "never retrieved".
                pending.future.exception()

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self, request: Request, expect: type[R], *, timeout: float | None = None
    ) -> R:
        """Send ``request`` and return its reply of type ``expect``.

        While the link is down the request waits and is sent (again) once it is back; the server
        applies a retried request once. With ``timeout`` the wait is bounded. A request the
        server turned away because this connection sent too fast (a short ``retry_after``) is
        sent again after that wait: it was refused before it ran, so resending is safe.

        Raises:
            PixmartError: the typed error the server replied with.
            Offline: the session is closed or can no longer reach a trusted server.
            TimeoutError: ``timeout`` passed without a reply.
        """
        waited = 0.0
        async with asyncio.timeout(timeout):
            while True:
                try:
                    return await self._request_once(request, expect)
                except RateLimited as exc:
                    wait = exc.retry_after
                    if wait is None or wait > RATE_LIMIT_MAX_WAIT or waited > RATE_LIMIT_BUDGET:
                        raise
                    # Jitter spreads a burst of refused requests over the refill instead of
                    # sending them all back at the same instant.
                    wait *= random.uniform(1.0, 2.0)
                    waited += wait
                    await asyncio.sleep(wait)

    async def _request_once(self, request: Request, expect: type[R]) -> R:
        if self._fatal is not None:
            raise Offline(str(self._fatal))
        if self._closing:
            raise Offline("The session was closed")
        request = msgspec.structs.replace(request, id=next(self._ids))
        frame = codec.encode(request)
        if self.user is None and len(frame) > codec.MAX_PRELOGIN_MESSAGE_BYTES:
            # The server cuts a frame this large before login (close 1009) instead of answering
            # it, and every large request needs a login: say so here.
            raise Unauthenticated("Log in first")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = _Pending(frame, future)
        try:
            if self._ws is not None:
                await self._send_quietly(self._ws, frame)
            reply = await future
        finally:
            self._pending.pop(request.id, None)
        return _unwrap(reply, expect)

    # -- accounts ----------------------------------------------------------------------------

    async def create_account(self, username: str, password: str) -> UserInfo:
        """Create an account (does not log in)."""
        reply = await self.request(
            CreateAccount(username=username, password=password), AccountCreated
        )
        return reply.user

    async def login(self, username: str, password: str) -> UserInfo:
        """Log in; the token is kept and reported to token listeners."""
        reply = await self.request(Login(username=username, password=password), LoggedIn)
        self.user = reply.user
        self.end_reason = None
        self._set_token(reply.token)
        return reply.user

    async def logout(self) -> None:
        """Log out and forget the token."""
        await self.request(Logout(), Ok)
        self.user = None
        self._set_token(None)

    async def whoami(self) -> UserInfo:
        """The user this session is logged in as."""
        reply = await self.request(WhoAmI(), Me)
        self.user = reply.user
        return reply.user

    async def change_password(self, old_password: str, new_password: str) -> None:
        """Change the password; every other session of the user ends, this one continues."""
        reply = await self.request(
            ChangePassword(old_password=old_password, new_password=new_password), LoggedIn
        )
        self.user = reply.user
        self._set_token(reply.token)


def _unwrap(reply: Reply, expect: type[R]) -> R:
    if isinstance(reply, ErrorReply):
        raise error_class(reply.code)(
            reply.message, retry_after=reply.retry_after, details=reply.details
        )
    if not isinstance(reply, expect):
        raise ProtocolViolation(f"Expected {expect.__name__}, got {type(reply).__name__}")
    return reply


def _retry_after(header: str | None) -> float:
    """Seconds from an HTTP ``Retry-After`` header in seconds; 5 if absent or not a number."""
    try:
        seconds = float(header) if header is not None else 5.0
    except ValueError:
        return 5.0
    return seconds if 0 < seconds < 3600 else 5.0


def _describe(exc: BaseException) -> str:
    """A short, human description of why a connection attempt failed."""
    if isinstance(exc, TrustError | PixmartError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "the server refused the connection (is it running?)"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, InvalidURI):
        return "the server address is not valid"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


__all__: list[str] = [
    "Backoff",
    "ConnectionState",
    "ConnectionStatus",
    "Offline",
    "ProtocolViolation",
    "Session",
]
