"""Provides the WebSocket transport: TLS server, handshake checks, per-connection read loop.

Each connection gets one reader loop (this module) that decodes frames, enforces limits and spawns
a task per request, plus one writer task that drains the connection's event outbox. Nothing here
knows the domains: requests go to the :class:`~backend.dispatch.Dispatcher`.

Before login a connection is counted per client address and server-wide
(:class:`~backend.admission.PreLoginGate`), must log in by a deadline fixed when it connected, and
may send only small frames; after login its frames may be large, and the bytes of large messages
buffered or being handled are bounded server-wide (:class:`~backend.admission.ByteBudget`,
charged from the frame headers by :class:`~backend.gated.GatedConnection`). Requests run on after
their connection closes; those running at once are bounded per client address, per user and
server-wide (:class:`~backend.running.RunningRequests`), counted until each ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from http import HTTPStatus

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from backend.admission import (
    AddressRate,
    AddressTally,
    BudgetShares,
    ByteBudget,
    PreLoginGate,
    return_freed_memory,
)
from backend.config import ServerConfig
from backend.connection import Connection
from backend.dispatch import Dispatcher, error_reply
from backend.events import EventHub
from backend.gated import GatedConnection, connection_class, set_max_message_size
from backend.listener import HandshakeSlots, bind_listener
from backend.metrics import UNKNOWN_TYPE
from backend.reply_frames import ReplySender
from backend.running import RunningRequests
from protocol import codec
from protocol.errors import BadRequest, PixmartError, Unavailable
from protocol.messages.base import Hello, Reply, Request

log = logging.getLogger(__name__)

#: The plain-HTTP path that load balancers and supervisors poll.
HEALTH_PATH = "/healthz"

#: Answers a health check: whether the server is healthy, and the JSON-able details.
HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]


@dataclass
class _Link:
    """One open connection as the transport tracks it: its login state and deadline timer."""

    websocket: ServerConnection
    connection: Connection
    logged_in: bool = False
    login_timer: asyncio.TimerHandle | None = None
    #: The connection is gone; requests still running no longer change its limits.
    closed: bool = False


class Transport:
    """The WebSocket server and the bookkeeping of its live connections."""

    def __init__(
        self,
        config: ServerConfig,
        dispatcher: Dispatcher,
        events: EventHub,
        tls: ssl.SSLContext,
        health: HealthCheck | None = None,
    ) -> None:
        self._config = config
        self._limits = config.limits
        self._dispatcher = dispatcher
        self._events = events
        self._tls = tls
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()
        self._requests: set[asyncio.Task[None]] = set()
        self._health = health
        self._gate = PreLoginGate(
            per_address=self._limits.max_unauthenticated_per_address,
            total=min(self._limits.max_unauthenticated, self._limits.max_connections),
            window=self._limits.login_deadline,
            on_evict=_close_evicted,
        )
        # Never above the frame limit itself (tests shrink that one).
        self._prelogin_frame_bytes = min(
            self._limits.max_prelogin_frame_bytes, self._limits.max_frame_bytes
        )
        #: Connections accepted and not past their upgrade request yet, counted at accept.
        self.handshakes = HandshakeSlots(
            per_address=self._limits.max_handshaking_per_address,
            total=self._limits.max_handshaking,
        )
        #: Requests sent before login, per client address.
        self.prelogin_rate = AddressRate(
            rate=self._limits.prelogin_request_rate, burst=self._limits.prelogin_request_burst
        )
        #: Connections waiting for their address's turn to send a request before login.
        self.prelogin_waiting = 0
        #: Every open connection per client address, logged in or not.
        self.per_address = AddressTally(per_address=self._limits.max_connections_per_address)
        #: Bytes of large incoming messages buffered or being handled, server-wide.
        self.frame_budget = ByteBudget(self._limits.max_inflight_frame_bytes)
        #: Each client address's share of it.
        self.frame_shares = BudgetShares(
            self.frame_budget, self._limits.max_inflight_frame_bytes_per_address
        )
        #: Requests running, per address, per user and in all, also after their connection
        #: closed (each connection's own ``max_in_flight`` holds only while it is open).
        self.running = RunningRequests(
            per_address=self._limits.max_running_requests_per_address,
            per_user=self._limits.max_running_requests_per_user,
            total=self._limits.max_running_requests,
        )
        dispatcher.metrics.watch_running_requests(self.running)
        self._closers: set[asyncio.Task[None]] = set()
        #: Sends requests' replies (encoded into kept buffers, large ones in fragments).
        self._replies = ReplySender()
        #: Bound but not yet admitting clients while the server finishes starting.
        self.accepting = False
        self.shutting_down = False

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._server is not None
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    @property
    def connection_count(self) -> int:
        """How many connections are open."""
        return len(self._connections)

    @property
    def prelogin(self) -> PreLoginGate:
        """The count of connections that have not logged in."""
        return self._gate

    async def start(self) -> None:
        """Bind and start accepting connections."""
        # Large incoming messages come and go: their memory must go back to the system.
        return_freed_memory()
        # Our own listening socket: it bounds the connections still in their handshakes.
        listener = bind_listener(self._config.host, self._config.port, self.handshakes)
        try:
            self._server = await self._listen(listener)
        except BaseException:
            listener.close()
            raise

    async def _listen(self, listener: socket.socket) -> Server:
        origins: list[str | None] = [None, *self._config.allowed_origins]
        return await serve(
            self._handle,
            sock=listener,
            ssl=self._tls,
            origins=origins,  # type: ignore[arg-type]
            process_request=self._admit,
            compression=None,  # pictures are compressed already; deflate would only cost CPU
            # Every connection starts logged out: small frames until it logs in (_sync_login).
            max_size=self._prelogin_frame_bytes,
            # Pause reading once this many complete frames wait (large ones are charged to
            # the byte budget from their headers besides).
            max_queue=(max(0, self._limits.max_queued_frames - 1), 0),
            ping_interval=self._limits.ping_interval,
            ping_timeout=self._limits.ping_timeout,
            server_header=None,
            create_connection=connection_class(
                self._gate,
                self.frame_budget,
                self._prelogin_frame_bytes,
                self.per_address,
                self.frame_shares,
            ),
            # Passed to loop.create_server: a peer that stalls in the TLS handshake must not
            # hold its socket and its handshake slot for asyncio's default minute.
            ssl_handshake_timeout=self._limits.tls_handshake_timeout,
        )

    async def _admit(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        # Past its handshakes: the pre-login gate (or a login) bounds it from here.
        self.handshakes.passed(connection.remote_address)
        if request.path == HEALTH_PATH and "Upgrade" not in request.headers:
            return await self._health_response(connection)
        if not self.accepting:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Server is starting\n")
        if self.shutting_down:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down\n")
        refusal = connection.refusal if isinstance(connection, GatedConnection) else None
        if refusal is not None:
            response = connection.respond(refusal.status, refusal.reason)
            response.headers["Retry-After"] = str(refusal.retry_after)
            return response
        if len(self._connections) >= self._limits.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections\n")
        # Counted until the connection is lost (GatedConnection.connection_lost).
        refusal = self.per_address.admit(connection, _peer_host(connection))
        if refusal is not None:
            response = connection.respond(refusal.status, refusal.reason)
            response.headers["Retry-After"] = str(refusal.retry_after)
            return response
        return None

    async def _health_response(self, connection: ServerConnection) -> HttpResponse:
        """``200`` with a small JSON body when healthy, ``503`` with the same body otherwise."""
        healthy, details = (False, {}) if self._health is None else await self._health()
        healthy = healthy and self.accepting and not self.shutting_down
        body = {"status": "ok" if healthy else "unavailable", **details}
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        payload = msgspec.json.encode(body) + b"\n"
        response = connection.respond(status, "")
        headers = Headers(
            (name, value)
            for name, value in response.headers.raw_items()
            if name.lower() not in ("content-type", "content-length")
        )
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(payload))
        headers["Cache-Control"] = "no-store"
        return dataclasses.replace(response, headers=headers, body=payload)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (or cancel them), close with 1001."""
        self.shutting_down = True
        if self._server is None:
            return
        # Stop listening, but keep the connections open until the requests in flight are
        # answered. Not via ``Server.close(close_connections=False)``: that call is idempotent,
        # so it would turn the ``close(code=GOING_AWAY)`` below into a no-op and leave every
        # client connected until its idle timeout.
        self._server.server.close()
        if self._requests:
            _, pending = await asyncio.wait(set(self._requests), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self._server.close(
            close_connections=True, code=CloseCode.GOING_AWAY, reason="server stopping"
        )
        await self._server.wait_closed()

    async def _handle(self, websocket: ServerConnection) -> None:
        address = str(websocket.remote_address[0]) if websocket.remote_address else "?"
        connection = Connection(
            address, rate=self._limits.request_rate, burst=self._limits.request_burst
        )
        link = _Link(websocket, connection)
        # The deadline was fixed when the gate counted the connection; nothing extends it.
        deadline = self._gate.deadline(websocket)
        self._arm_login_deadline(
            link, deadline if deadline is not None else time.monotonic() + self._gate.window
        )
        self._connections.add(websocket)
        self._events.attach(connection)
        self._dispatcher.metrics.connection_opened(connection)
        writer = asyncio.create_task(self._drain_events(link))
        try:
            await self._read_loop(link)
        finally:
            link.closed = True
            if link.login_timer is not None:
                link.login_timer.cancel()
            # A logout that ended after the connection was lost counted it again as not
            # logged in (_sync_login); nothing else would give that place back.
            self._gate.release(websocket)
            self._connections.discard(websocket)
            self._dispatcher.metrics.connection_closed(connection)
            self._events.drop(connection)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _arm_login_deadline(self, link: _Link, deadline: float) -> None:
        delay = max(0.0, deadline - time.monotonic())
        link.login_timer = asyncio.get_running_loop().call_later(
            delay, self._login_deadline_passed, link
        )

    def _login_deadline_passed(self, link: _Link) -> None:
        # A timer, not a read timeout: it fires whatever the connection sends, and also while
        # its read loop waits for a request slot.
        link.login_timer = None
        self._sync_login(link)
        if link.logged_in:
            return
        log.info("closing %r: not logged in within %g s", link.connection, self._gate.window)
        closer = asyncio.create_task(
            link.websocket.close(
                CloseCode.NORMAL_CLOSURE, f"not logged in within {self._gate.window:g} s"
            )
        )
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    def _sync_login(self, link: _Link) -> None:
        """Apply the limits of the connection's login state if it changed since last time.

        Logged in: no longer counted by the gate, no deadline, frames up to ``max_frame_bytes``.
        Logged out (a logout, or a session that ended): counted again, a new deadline, small
        frames. Called before a reply is sent, so a client that waits for its ``LoggedIn``
        reply may send large frames from then on.

        Nothing once the connection is closed: requests outlive it, and a logout that ended
        after it would count the closed connection as not logged in for good (the gate frees
        a place when its connection closes or logs in, and this one did both already).
        """
        logged_in = link.connection.principal is not None
        if link.closed or logged_in == link.logged_in:
            return
        link.logged_in = logged_in
        protocol = link.websocket.protocol
        if logged_in:
            self._gate.release(link.websocket)
            if link.login_timer is not None:
                link.login_timer.cancel()
                link.login_timer = None
            set_max_message_size(protocol, self._limits.max_frame_bytes)
        else:
            set_max_message_size(protocol, self._prelogin_frame_bytes)
            deadline = self._gate.rejoin(link.websocket, link.connection.address)
            self._arm_login_deadline(link, deadline)

    async def _read_loop(self, link: _Link) -> None:
        websocket = link.websocket
        garbage: deque[float] = deque()
        in_flight = asyncio.Semaphore(self._limits.max_in_flight)
        while True:
            try:
                # Before login the login deadline comes first (_login_deadline_passed).
                async with asyncio.timeout(self._limits.idle_timeout):
                    frame = await websocket.recv()
            except TimeoutError:
                await websocket.close(CloseCode.NORMAL_CLOSURE, "idle timeout")
                return
            except ConnectionClosed:
                return
            # A session can end between two frames (logout elsewhere, expiry).
            self._sync_login(link)
            # The message was charged to the byte budget from its header, before websockets
            # buffered it; the charge is given back once its reply is sent.
            meter = websocket.meter if isinstance(websocket, GatedConnection) else None
            charged = meter.take() if meter is not None else 0
            release = meter.release if meter is not None else self.frame_budget.release
            keep_reading = await self._take_frame(
                link, frame, (charged, release), garbage, in_flight
            )
            # Not held while the next message may wait for the budget: its charge is gone.
            del frame
            if not keep_reading:
                return

    async def _take_frame(
        self,
        link: _Link,
        frame: bytes | str,
        charge: tuple[int, Callable[[int], None]],
        garbage: deque[float],
        in_flight: asyncio.Semaphore,
    ) -> bool:
        """Refuse ``frame`` or start a task that serves it; whether to go on reading.

        ``charge``: the bytes of the budget that go with the frame (to its task, or back at
        once), and how to give them back (to the connection's share of the budget).
        """
        websocket, connection = link.websocket, link.connection
        charged, release = charge
        try:
            if not link.logged_in:
                await self._prelogin_turn(link)
            request_type = UNKNOWN_TYPE  # for the metrics and log line of a refused frame
            try:
                message = codec.decode(frame, max_bytes=self._limits.max_message_bytes)
                request_type = type(message).__name__
                if not isinstance(message, Request):
                    raise BadRequest(f"{type(message).__name__} is not a request")
                if connection.client_id is None and not isinstance(message, Hello):
                    raise BadRequest("Send Hello first")
                connection.bucket.take()
            except PixmartError as exc:
                return await self._refuse(link, frame, request_type, exc, garbage)
            assert isinstance(frame, bytes)
            # Back-pressure: with max_in_flight requests running, stop reading this connection.
            if not await _request_slot(websocket, in_flight):
                return False  # closed meanwhile: nobody would read the reply
            try:
                # Past the address's, the user's or the server's running requests: refused at
                # once, not queued behind them (they may belong to connections long gone).
                ticket = self.running.admit(connection.address, connection.user_id)
            except PixmartError as exc:
                in_flight.release()
                return await self._refuse(link, frame, request_type, exc, garbage)
            try:
                task = asyncio.create_task(self._serve(link, message, frame))
            except BaseException:
                ticket.release()
                in_flight.release()
                raise
            # Done callbacks, not a finally in the task: they run whatever ends it (reply sent,
            # error, cancelled at shutdown, even cancelled before it started), and the
            # request counts until then, also once its connection is gone.
            task.add_done_callback(lambda _: ticket.release())
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
            task.add_done_callback(lambda _: in_flight.release())
            # The task holds the frame until its reply is sent; a done callback runs even if
            # the task is cancelled before it starts.
            task.add_done_callback(_releaser(charged, release))
            charged = 0
            return True
        finally:
            if charged:
                release(charged)

    async def _refuse(
        self,
        link: _Link,
        frame: bytes | str,
        request_type: str,
        exc: PixmartError,
        garbage: deque[float],
    ) -> bool:
        """Answer ``frame`` with ``exc`` without serving it; whether to go on reading (a
        connection that sends too many malformed frames is closed)."""
        websocket, connection = link.websocket, link.connection
        request_id = codec.request_id_of(frame)
        self._dispatcher.refused(connection, request_id, request_type, exc)
        await self._send_quietly(websocket, codec.encode(error_reply(request_id, exc)))
        if isinstance(exc, BadRequest) and self._too_much_garbage(garbage):
            log.warning("closing %r: too many malformed messages", connection)
            await websocket.close(CloseCode.POLICY_VIOLATION, "too many malformed messages")
            return False
        return True

    async def _prelogin_turn(self, link: _Link) -> None:
        """Wait for the address's turn to send a request before login, reading nothing else
        from this connection meanwhile; a close (its login deadline, a stop) ends the wait."""
        wait = self.prelogin_rate.delay(link.connection.address)
        if wait <= 0.0:
            return
        self.prelogin_waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await link.websocket.wait_closed()
        finally:
            self.prelogin_waiting -= 1

    def _too_much_garbage(self, garbage: deque[float]) -> bool:
        now = time.monotonic()
        garbage.append(now)
        while garbage and garbage[0] < now - self._limits.garbage_window:
            garbage.popleft()
        return len(garbage) > self._limits.max_garbage

    async def _serve(self, link: _Link, request: Request, frame: bytes) -> None:
        if self.shutting_down:
            reply: Reply = error_reply(
                request.id, Unavailable("The server is shutting down", retry_after=2)
            )
        else:
            reply = await self._dispatcher.dispatch(link.connection, request, frame)
        # Before the reply leaves: a client that read LoggedIn may send large frames at once.
        self._sync_login(link)
        with contextlib.suppress(ConnectionClosed):
            await self._replies.send(link.websocket, reply)

    async def _send_quietly(self, websocket: ServerConnection, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await websocket.send(frame)

    async def _drain_events(self, link: _Link) -> None:
        websocket, connection = link.websocket, link.connection
        while True:
            frame = await connection.outbox.get()
            if not self._events.admits(connection):
                continue  # queued before its session ended; the end is queued in its place
            try:
                await websocket.send(frame)
            except ConnectionClosed:
                return
            # The event may have told of a session that ended: the pre-login limits are back.
            self._sync_login(link)


async def _request_slot(websocket: ServerConnection, in_flight: asyncio.Semaphore) -> bool:
    """Take one of the connection's request slots, waiting while all are taken; ``False`` if
    the connection closed first (and no slot is taken).

    Requests outlive their connection (a retry finds their reply in the replay cache), so a
    slot may free long after the close. Waiting for it alone kept a closed connection counted
    (``max_connections``), attached to the events and its timer armed until one of its
    requests ended: connections dropped with their requests queued behind slow work filled
    the server, and everyone else was turned away.
    """
    if not in_flight.locked():
        await in_flight.acquire()  # free: taken at once, no task needed
        return True
    slot = asyncio.ensure_future(in_flight.acquire())
    closed = asyncio.ensure_future(websocket.wait_closed())
    taken = False
    try:
        await asyncio.wait((slot, closed), return_when=asyncio.FIRST_COMPLETED)
        taken = slot.done()
        return taken
    finally:
        closed.cancel()
        if not taken:
            if slot.done():
                in_flight.release()  # granted just as this wait was cancelled
            else:
                slot.cancel()  # a grant not yet taken passes to the next waiter


def _releaser(amount: int, release: Callable[[int], None]) -> Callable[[asyncio.Task[None]], None]:
    """A done callback that gives ``amount`` bytes back through ``release``."""

    def done(_: asyncio.Task[None]) -> None:
        if amount:
            release(amount)

    return done


def _peer_host(connection: ServerConnection) -> str:
    """The connection's peer IP address as text, or ``"?"``."""
    return str(connection.remote_address[0]) if connection.remote_address else "?"


def _close_evicted(handle: Hashable) -> None:
    """Drop a connection the pre-login gate gave up to make room (it never logged in)."""
    if isinstance(handle, ServerConnection) and handle.transport is not None:
        log.info("closing %s: room made for a connection from a less busy address", handle.id)
        handle.transport.abort()
