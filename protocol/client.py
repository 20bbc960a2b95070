"""Provides :class:`Session`: the one persistent, self-healing connection to a pixmart server.

Used by the TUI, the scripting CLI, the tests and the benchmarks. It re-sends unanswered requests
after a reconnect (the server answers a retried request from its replay cache, so it takes effect
once), resumes the login with the session token without asking the person again, and reports its
state to whoever listens. The bookkeeping (request ids, the pending table, re-send, hello and
resume) is :class:`~protocol.session_core.SessionCore`'s, which does no I/O; this module is the
asyncio glue around it: it opens connections, moves frames, waits, and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import CloseCode

from protocol.errors import Forbidden, PixmartError, RateLimited, Unavailable
from protocol.messages.accounts import (
    AccountCreated,
    ChangePassword,
    CreateAccount,
    LoggedIn,
    Login,
    Logout,
    Me,
    SessionEndReason,
    UserInfo,
    WhoAmI,
)
from protocol.messages.base import PROTOCOL_VERSION, Capabilities, Event, Ok, Reply, Request
from protocol.money import DEFAULT_CURRENCY
from protocol.session_core import (
    EventReceived,
    HandshakeDone,
    HandshakeFailed,
    ProtocolViolation,
    ReplyReceived,
    RequestFailed,
    SessionCore,
    TokenChanged,
    unwrap,
)
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
class _Listeners:
    status: list[Callable[[ConnectionStatus], None]] = field(default_factory=list)
    events: list[Callable[[Event], None]] = field(default_factory=list)
    token: list[Callable[[str | None], None]] = field(default_factory=list)


#: A request refused for sending too fast is resent if told to wait at most this long, until
#: it has waited this long in all.
RATE_LIMIT_MAX_WAIT = 2.0
RATE_LIMIT_BUDGET = 30.0

_RETRYABLE = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, EOFError)

#: How a connection that had reached the server fails when it is cut on the way (as opposed to
#: a server that refuses, cannot be found, cannot be trusted or does not answer).
_CUT = (EOFError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError)

#: Close codes a server sends when it goes away for a while: come back later.
_COME_BACK = (CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART, CloseCode.TRY_AGAIN_LATER)


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
        self.client_name = client_name
        self.client_id = secrets.token_hex(16)
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self._core = SessionCore(client_id=self.client_id, client_name=client_name, token=token)
        #: The callers waiting for a reply, by request id.
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        #: Re-sends after a reconnect, kept so they are not collected half done.
        self._sends: set[asyncio.Task[None]] = set()
        self._handshake: HandshakeDone | HandshakeFailed | None = None
        self._ws: ClientConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._fatal: Exception | None = None
        self._listeners = _Listeners()
        self.status = ConnectionStatus(ConnectionState.DISCONNECTED, server=self.server)

    # -- the session's state, as the core keeps it --------------------------------------------

    @property
    def token(self) -> str | None:
        """The session token; ``None`` when logged out."""
        return self._core.token

    @property
    def user(self) -> UserInfo | None:
        """Who is logged in, as the server last said."""
        return self._core.user

    @property
    def end_reason(self) -> SessionEndReason | None:
        """Why the server last ended this session's login while connected (``None`` after a
        login); token listeners hear ``None`` first, the ``SessionEnded`` event follows."""
        return self._core.end_reason

    @property
    def capabilities(self) -> Capabilities | None:
        """What the server said it can do, from the latest hello."""
        return self._core.capabilities

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

    def _tell_token(self, token: str | None) -> None:
        for listener in list(self._listeners.token):
            try:
                listener(token)
            except Exception:
                log.exception("token listener failed")

    def _tell_event(self, event: Event) -> None:
        for listener in list(self._listeners.events):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    def _act_on_core(self) -> None:
        """Do what the core reports: resolve waiting callers, tell listeners."""
        for happened in self._core.events_received():
            if isinstance(happened, ReplyReceived | RequestFailed):
                future = self._waiting.get(happened.request_id)
                if future is None or future.done():
                    continue
                if isinstance(happened, ReplyReceived):
                    future.set_result(happened.reply)
                else:
                    future.set_exception(happened.error)
                    # Retrieved here so an abandoned request does not log "never retrieved".
                    future.exception()
            elif isinstance(happened, EventReceived):
                self._tell_event(happened.event)
            elif isinstance(happened, TokenChanged):
                self._tell_token(happened.token)
            else:
                self._handshake = happened

    async def _write(self, ws: ClientConnection) -> None:
        """Send the frames the core has for ``ws`` (a closed connection drops them: the core
        holds every pending request for the next one)."""
        for frame in self._core.data_to_send():
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)

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

    @property
    def established(self) -> bool:
        """Whether the first connection was made: from then on the session heals itself."""
        return self._supervisor is not None

    async def connect(self) -> None:
        """Open the first connection (and resume the token, if any), then keep it alive.

        A first connection that reached the server and was cut on the way (during the TLS
        handshake, the upgrade or the hello and resume) is a drop like any later one: the
        status says reconnecting and it is tried again, for ``open_timeout`` seconds in all.
        A server that refuses, cannot be found or cannot be trusted is reported at once.

        Raises:
            TrustError: the server cannot be trusted.
            PixmartError: the server refused the hello (e.g. a protocol version mismatch).
            OSError, TimeoutError, InvalidHandshake: the server could not be reached.
            Offline: the session was closed while it was connecting.
        """
        if self._supervisor is not None:
            raise RuntimeError("already connected")
        self._set_status(ConnectionStatus(ConnectionState.CONNECTING, server=self.server))
        try:
            ws = await self._first_connection()
        except BaseException as exc:
            if not self._closing:  # close() has said disconnected already
                self._set_status(
                    ConnectionStatus(
                        ConnectionState.OFFLINE, server=self.server, reason=_describe(exc)
                    )
                )
            raise
        self._supervisor = asyncio.create_task(self._supervise(ws), name="pixmart-session")

    async def _first_connection(self) -> ClientConnection:
        """Open and greet the first connection.

        Once an attempt reached the server and was cut, the next ones are reconnects: they are
        tried, whatever keeps them from getting through (the server restarting, say), for
        ``open_timeout`` seconds in all.
        """
        give_up_at = time.monotonic() + self.open_timeout
        attempt = 0
        while True:
            try:
                return await self._open_and_greet()
            except _RETRYABLE as exc:
                delay = self.backoff.delay(attempt)
                reached = attempt > 0 or _was_cut(exc)
                if not reached or time.monotonic() + delay > give_up_at:
                    raise
                reason = _describe(exc)
            await self._wait_to_retry(delay, attempt, reason)
            if self._closing:
                raise Offline("The session was closed")
            attempt += 1

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
            self._core.connection_made()
            self._handshake = None
            async with asyncio.timeout(self.open_timeout):
                while self._handshake is None:
                    await self._write(ws)
                    self._core.receive_frame(await ws.recv())
                    self._act_on_core()
            if isinstance(self._handshake, HandshakeFailed):
                raise self._handshake.error
        except BaseException:
            self._core.connection_lost()
            ws.transport.abort()
            raise
        self._attach(ws)
        return ws

    def _attach(self, ws: ClientConnection) -> None:
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
        # The requests that waited for this connection go out in order, without holding up
        # the reader that their replies need.
        task = asyncio.create_task(self._write(ws))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _supervise(self, ws: ClientConnection) -> None:
        while True:
            reason = await self._read_until_closed(ws)
            self._ws = None
            self._core.connection_lost()
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
                self._core.receive_frame(frame)
                self._act_on_core()
        except ConnectionClosed:
            pass
        code = ws.close_code
        reason = ws.close_reason
        if code == 1001:
            return "the server is restarting"
        if code is None or code == 1006:
            return "the connection was lost"
        return f"the server closed the connection ({code}{': ' + reason if reason else ''})"

    async def _wait_to_retry(self, delay: float, attempt: int, reason: str) -> None:
        """Say the link is down and why, then wait ``delay`` seconds (or until woken)."""
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
        if self._closing:  # close() may have set the wake-up just before it was cleared
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _reconnect(self, reason: str) -> ClientConnection:
        attempt = 0
        while True:
            await self._wait_to_retry(self.backoff.delay(attempt), attempt, reason)
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

    def _fail_pending(self, exc: PixmartError) -> None:
        self._core.fail_pending(exc)
        self._act_on_core()

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
        request_id = self._core.send_request(request)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            if self._ws is not None:
                await self._write(self._ws)
            reply = await future
        finally:
            self._waiting.pop(request_id, None)
            self._core.forget(request_id)
        return unwrap(reply, expect)

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
        self._core.logged_in(reply.user, reply.token)
        self._act_on_core()
        return reply.user

    async def logout(self) -> None:
        """Log out and forget the token."""
        await self.request(Logout(), Ok)
        self._core.logged_out()
        self._act_on_core()

    async def whoami(self) -> UserInfo:
        """The user this session is logged in as."""
        reply = await self.request(WhoAmI(), Me)
        self._core.user = reply.user
        return reply.user

    async def change_password(self, old_password: str, new_password: str) -> None:
        """Change the password; every other session of the user ends, this one continues."""
        reply = await self.request(
            ChangePassword(old_password=old_password, new_password=new_password), LoggedIn
        )
        self._core.logged_in(reply.user, reply.token)
        self._act_on_core()


def _retry_after(header: str | None) -> float:
    """Seconds from an HTTP ``Retry-After`` header in seconds; 5 if absent or not a number."""
    try:
        seconds = float(header) if header is not None else 5.0
    except ValueError:
        return 5.0
    return seconds if 0 < seconds < 3600 else 5.0


def _was_cut(exc: BaseException) -> bool:
    """Whether a connection attempt failed because it was cut after reaching the server (or
    the server closed it to come back shortly)."""
    if isinstance(exc, ConnectionClosed):
        return exc.rcvd is None or exc.rcvd.code in _COME_BACK
    if isinstance(exc, InvalidMessage):  # the upgrade's answer was cut off
        return isinstance(exc.__cause__, _CUT)
    return isinstance(exc, _CUT)


def _describe(exc: BaseException) -> str:
    """A short, human description of why a connection attempt failed."""
    if isinstance(exc, TrustError | PixmartError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "the server refused the connection (is it running?)"
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code in _COME_BACK:
        return "the server is restarting"
    if _was_cut(exc):
        return "the connection was lost"
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
