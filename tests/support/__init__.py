"""Test helpers: raw protocol clients, servers and sessions, status recording, bounded polling.

The raw client speaks the wire protocol frame by frame (no :class:`~protocol.client.Session`
logic), so tests can send malformed or out-of-order frames and look at exactly what comes back.
``tests.support.proxy`` has a TCP proxy that can break links on purpose; ``tests.support.certs``
issues a throw-away CA and server certificate; ``tests.support.catalogue`` and
``tests.support.commerce`` hold the catalogue's and the shop's helpers (pictures, uploads, listed
items, a real server process).
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from backend.accounts.repositories import account_repository, session_repository
from backend.accounts.service import username_key
from backend.config import Limits, ServerConfig
from backend.connection import Connection
from backend.server import PixmartServer
from protocol import codec
from protocol.client import Backoff, ConnectionState, ConnectionStatus, Session
from protocol.messages.base import PROTOCOL_VERSION, Hello, Message, Reply, Request, Welcome
from protocol.trust import TrustPolicy

#: Fast reconnects, as in ``tests/conftest.py``.
FAST_BACKOFF = Backoff(initial=0.02, factor=2.0, maximum=0.2)

#: The edge's per-address (and per-user) limits raised for tests, which connect many clients at
#: once from one loopback address, often as one user; those limits have their own tests
#: (tests/fault/test_edge_connections.py, tests/fault/test_running_requests.py).
TEST_LIMITS = Limits(
    max_unauthenticated_per_address=1_000,
    max_handshaking_per_address=1_000,
    max_connections_per_address=1_000,
    prelogin_request_rate=1_000_000.0,
    prelogin_request_burst=1_000_000,
    max_running_requests_per_address=100_000,
    max_running_requests_per_user=100_000,
)


def insecure_tls13_context() -> ssl.SSLContext:
    """A TLS 1.3 client context that accepts any certificate (raw tests do not test trust)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class RawClient:
    """One WebSocket connection driven frame by frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.client_id = secrets.token_hex(16)

    async def send_frame(self, frame: bytes | str) -> None:
        """Send one frame as is (bytes as a binary frame, str as a text frame)."""
        await self.ws.send(frame)

    async def send(self, message: Message) -> None:
        """Encode and send one message."""
        await self.ws.send(codec.encode(message))

    async def recv(self, timeout: float = 5.0) -> Message:
        """The next message from the server."""
        async with asyncio.timeout(timeout):
            frame = await self.ws.recv()
        return codec.decode(frame, max_bytes=64 * 1024 * 1024)

    async def recv_reply(self, timeout: float = 5.0) -> Reply:
        """The next reply, skipping events."""
        while True:
            message = await self.recv(timeout)
            if isinstance(message, Reply):
                return message

    async def call(self, request: Request, timeout: float = 5.0) -> Reply:
        """Send ``request`` and return the reply that carries its id."""
        await self.send(request)
        while True:
            reply = await self.recv_reply(timeout)
            if reply.id == request.id:
                return reply

    async def hello(self, request_id: int = 1) -> Welcome:
        """Say hello with this client's id; fail the test if the server does not welcome it."""
        reply = await self.call(
            Hello(id=request_id, version=PROTOCOL_VERSION, client_id=self.client_id)
        )
        assert isinstance(reply, Welcome), reply
        return reply


@asynccontextmanager
async def raw_client(
    server: PixmartServer | int, *, origin: str | None = None, **kwargs: Any
) -> AsyncIterator[RawClient]:
    """A raw TLS 1.3 WebSocket connection to ``server`` (or a port on loopback)."""
    port = server if isinstance(server, int) else server.port
    async with connect(
        f"wss://127.0.0.1:{port}",
        ssl=insecure_tls13_context(),
        origin=origin,  # type: ignore[arg-type]
        compression=None,
        proxy=None,
        open_timeout=5,
        close_timeout=2,
        max_size=64 * 1024 * 1024,
        **kwargs,
    ) as ws:
        yield RawClient(ws)


@asynccontextmanager
async def running_server(config: ServerConfig) -> AsyncIterator[PixmartServer]:
    """A server started with ``config`` (for tests that need other limits or policies).

    Image search, if on, has warmed up by the time the block runs.
    """
    server = PixmartServer(config)
    await server.start()
    await server.vision_ready()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def pinned_session(
    server: PixmartServer | int, fingerprint: str | None = None, **kwargs: Any
) -> AsyncIterator[Session]:
    """A connected :class:`Session` that pins the server's fingerprint; closed afterwards."""
    if isinstance(server, PixmartServer):
        port, fingerprint = server.port, fingerprint or server.fingerprint
    else:
        port = server
    kwargs.setdefault("backoff", FAST_BACKOFF)
    session = Session(f"wss://127.0.0.1:{port}", TrustPolicy(fingerprint=fingerprint), **kwargs)
    await session.connect()
    try:
        yield session
    finally:
        await session.close()


def record_requests(server: PixmartServer, monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """Every request ``server`` dispatches from now on, in order (undone with ``monkeypatch``)."""
    seen: list[Request] = []
    original = server.dispatcher.dispatch

    async def recording(connection: Connection, request: Request, frame: bytes) -> Reply:
        seen.append(request)
        return await original(connection, request, frame)

    monkeypatch.setattr(server.dispatcher, "dispatch", recording)
    return seen


class StatusRecorder:
    """Records every :class:`ConnectionStatus` of a session and lets a test await one."""

    def __init__(self, session: Session) -> None:
        self.history: list[ConnectionStatus] = [session.status]
        self._changed = asyncio.Event()
        session.on_status(self._record)

    def _record(self, status: ConnectionStatus) -> None:
        self.history.append(status)
        self._changed.set()
        self._changed = asyncio.Event()

    def mark(self) -> int:
        """An index into :attr:`history`; pass it as ``since`` to only look at later statuses."""
        return len(self.history)

    def states(self, since: int = 0) -> list[ConnectionState]:
        """The states recorded from index ``since`` on."""
        return [status.state for status in self.history[since:]]

    async def wait_for(
        self, state: ConnectionState, *, since: int = 0, timeout: float = 5.0
    ) -> ConnectionStatus:
        """The first status in ``state`` recorded at or after ``since``; waits if there is none."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                for status in self.history[since:]:
                    if status.state is state:
                        return status
                await changed.wait()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Poll ``check`` until it returns true; fail with :class:`TimeoutError` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def user_count(server: PixmartServer, username: str) -> int:
    """How many users are stored under ``username`` (case-insensitively): 0 or 1."""
    found = await account_repository(server.db).by_key(username_key(username))
    return 0 if found is None else 1


async def session_count(server: PixmartServer, username: str) -> int:
    """How many live sessions the user ``username`` has in the database."""
    user = await account_repository(server.db).by_key(username_key(username))
    return 0 if user is None else await session_repository(server.db).count_of_user(user.id)


__all__ = [
    "FAST_BACKOFF",
    "RawClient",
    "StatusRecorder",
    "eventually",
    "insecure_tls13_context",
    "pinned_session",
    "raw_client",
    "record_requests",
    "running_server",
    "session_count",
    "user_count",
]
