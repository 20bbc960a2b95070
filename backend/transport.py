"""Provides the WebSocket transport: TLS server, handshake checks, per-connection read loop.

Each connection gets one reader loop (this module) that decodes frames, enforces limits and spawns
a task per request, plus one writer task that drains the connection's event outbox. Nothing here
knows the domains: requests go to the :class:`~backend.dispatch.Dispatcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from backend.config import ServerConfig
from backend.connection import Connection
from backend.dispatch import Dispatcher, error_reply
from backend.events import EventHub
from backend.metrics import UNKNOWN_TYPE
from protocol import codec
from protocol.errors import BadRequest, PixmartError, Unavailable
from protocol.messages.base import Hello, Reply, Request

log = logging.getLogger(__name__)

#: A connection must say hello and authenticate within this many seconds.
HANDSHAKE_TIMEOUT = 30.0
#: The plain-HTTP path that load balancers and supervisors poll.
HEALTH_PATH = "/healthz"

#: Answers a health check: whether the server is healthy, and the JSON-able details.
HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]


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

    async def start(self) -> None:
        """Bind and start accepting connections."""
        origins: list[str | None] = [None, *self._config.allowed_origins]
        self._server = await serve(
            self._handle,
            self._config.host,
            self._config.port,
            ssl=self._tls,
            origins=origins,  # type: ignore[arg-type]
            process_request=self._admit,
            compression=None,  # pictures are compressed already; deflate would only cost CPU
            max_size=self._limits.max_frame_bytes,
            max_queue=4,
            ping_interval=self._limits.ping_interval,
            ping_timeout=self._limits.ping_timeout,
            server_header=None,
        )

    async def _admit(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        if request.path == HEALTH_PATH and "Upgrade" not in request.headers:
            return await self._health_response(connection)
        if not self.accepting:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Server is starting\n")
        if self.shutting_down:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down\n")
        if len(self._connections) >= self._limits.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections\n")
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
        self._connections.add(websocket)
        self._dispatcher.metrics.connection_opened(connection)
        writer = asyncio.create_task(self._drain_events(websocket, connection))
        try:
            await self._read_loop(websocket, connection)
        finally:
            self._connections.discard(websocket)
            self._dispatcher.metrics.connection_closed(connection)
            self._events.drop(connection)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _read_loop(self, websocket: ServerConnection, connection: Connection) -> None:
        garbage: deque[float] = deque()
        in_flight = asyncio.Semaphore(self._limits.max_in_flight)
        while True:
            timeout = (
                HANDSHAKE_TIMEOUT if connection.principal is None else self._limits.idle_timeout
            )
            try:
                async with asyncio.timeout(timeout):
                    frame = await websocket.recv()
            except TimeoutError:
                await websocket.close(CloseCode.NORMAL_CLOSURE, "idle timeout")
                return
            except ConnectionClosed:
                return
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
                request_id = codec.request_id_of(frame)
                self._dispatcher.refused(connection, request_id, request_type, exc)
                await self._send_quietly(websocket, codec.encode(error_reply(request_id, exc)))
                if isinstance(exc, BadRequest) and self._too_much_garbage(garbage):
                    log.warning("closing %r: too many malformed messages", connection)
                    await websocket.close(CloseCode.POLICY_VIOLATION, "too many malformed messages")
                    return
                continue
            assert isinstance(frame, bytes)
            # Back-pressure: with max_in_flight requests running, stop reading this connection.
            await in_flight.acquire()
            task = asyncio.create_task(self._serve(websocket, connection, message, frame))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
            task.add_done_callback(lambda _: in_flight.release())

    def _too_much_garbage(self, garbage: deque[float]) -> bool:
        now = time.monotonic()
        garbage.append(now)
        while garbage and garbage[0] < now - self._limits.garbage_window:
            garbage.popleft()
        return len(garbage) > self._limits.max_garbage

    async def _serve(
        self, websocket: ServerConnection, connection: Connection, request: Request, frame: bytes
    ) -> None:
        if self.shutting_down:
            reply: Reply = error_reply(
                request.id, Unavailable("The server is shutting down", retry_after=2)
            )
        else:
            reply = await self._dispatcher.dispatch(connection, request, frame)
        await self._send_quietly(websocket, codec.encode(reply))

    async def _send_quietly(self, websocket: ServerConnection, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await websocket.send(frame)

    async def _drain_events(self, websocket: ServerConnection, connection: Connection) -> None:
        while True:
            frame = await connection.outbox.get()
            try:
                await websocket.send(frame)
            except ConnectionClosed:
                return
