"""Abuse: idle connections, a reader that never reads, request floods and login brute force.

In each case the limits hold and a well-behaved client is served normally at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import replace

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend.config import ServerConfig, SessionPolicy
from backend.server import PixmartServer
from protocol import codec
from protocol.errors import ErrorCode, RateLimited
from protocol.messages.accounts import Login
from protocol.messages.base import PROTOCOL_VERSION, ErrorReply, Hello, Welcome
from tests.conftest import SessionFactory, logged_in, with_limits
from tests.fault.conftest import raw_peer


def _hello() -> bytes:
    return codec.encode(Hello(id=1, version=PROTOCOL_VERSION, client_id=secrets.token_hex(16)))


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """Small limits so the tests reach them quickly."""
    config = with_limits(
        server_config, max_connections=40, request_rate=50.0, request_burst=60, max_in_flight=8
    )
    return replace(
        config,
        sessions=SessionPolicy(max_failures_per_account=5, max_failures_per_address=1000),
    )


async def test_idle_connections_are_capped_and_others_still_served(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    good = await logged_in(make_session, "steady")
    open_peer = raw_peer(server)
    async with contextlib.AsyncExitStack() as stack:
        idle: list[ClientConnection] = []
        refused = 0
        for _ in range(60):
            try:
                idle.append(await stack.enter_async_context(open_peer()))
            except InvalidStatus as exc:
                assert exc.response.status_code == 503
                refused += 1
        # 40 allowed in all, one of them the good client's.
        assert len(idle) == 39
        assert refused == 21
        assert (await good.whoami()).username == "steady"


async def test_a_reader_that_never_reads_cannot_hurt_others(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    good = await logged_in(make_session, "steady")
    open_peer = raw_peer(server)
    async with open_peer(max_queue=1, close_timeout=1) as ws:
        await ws.send(_hello())
        # Pipeline many requests and never read a reply: the server must stop reading this
        # connection (back-pressure) instead of buffering replies without bound.
        frame = _hello()
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            async with asyncio.timeout(3):
                for _ in range(20_000):
                    await ws.send(frame)
        for _ in range(20):
            assert (await good.whoami()).username == "steady"
        assert server.connection_count == 2


async def test_a_flood_from_one_connection_is_rate_limited(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    good = await logged_in(make_session, "steady")
    open_peer = raw_peer(server)
    codes: list[str] = []
    async with open_peer() as ws:
        await ws.send(_hello())
        assert isinstance(codec.decode(await ws.recv()), Welcome)
        for _ in range(300):
            await ws.send(_hello())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while len(codes) < 300:
                    reply = codec.decode(await ws.recv())
                    codes.append(reply.code if isinstance(reply, ErrorReply) else "ok")
    assert codes.count(ErrorCode.RATE_LIMITED) > 100
    assert codes.count("ok") >= 50
    assert (await good.whoami()).username == "steady"


async def test_login_brute_force_is_throttled_without_locking_out_others(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    victim = await logged_in(make_session, "victim", "victim-password")
    attacker = await make_session()
    outcomes: list[str] = []
    for attempt in range(12):
        try:
            await attacker.request(Login(username="victim", password=f"guess-{attempt}"), Welcome)
        except RateLimited as exc:
            assert exc.retry_after is not None and exc.retry_after > 0
            outcomes.append("throttled")
        except Exception as exc:  # noqa: BLE001
            outcomes.append(type(exc).__name__)
    assert outcomes[:5] == ["Unauthenticated"] * 5
    assert set(outcomes[5:]) == {"throttled"}
    # The right password is refused too while locked: a lockout that can be probed past is none.
    with pytest.raises(RateLimited):
        await attacker.login("victim", "victim-password")
    # The victim's existing session is untouched and another account logs in normally.
    assert (await victim.whoami()).username == "victim"
    await logged_in(make_session, "bystander")
