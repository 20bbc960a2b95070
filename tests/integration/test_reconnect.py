"""Self-healing sessions: status reporting, drops mid-request, server restarts and shutdown.

Proves that listeners see CONNECTED (with TLS 1.3 and the fingerprint) and RECONNECTING (with the
time of the next attempt and a reason); that a link cut after a non-idempotent request was sent
(its reply lost, or the request itself lost, or the request still running) ends with the call
returning success exactly once, and the server applying it once (the replay cache); that a server
restart on the same port with the same data dir ends with the session resumed by itself; and that
a graceful stop finishes in-flight requests, closes connections with 1001 and sends clients to
RECONNECTING rather than to an error; and that a first connection cut on the way is a drop like
any other (RECONNECTING, then resumed), while one refused outright fails at once.

The drops are made deterministic with :class:`~tests.support.proxy.TcpProxy`: it swallows one
direction of traffic, the test waits until the interesting bytes were swallowed, then cuts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from websockets.exceptions import ConnectionClosed

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import ConnectionState, Offline, Session
from protocol.errors import Conflict
from protocol.messages.accounts import AccountCreated, CreateAccount, Login, UserInfo
from protocol.messages.base import ErrorReply, Request
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.support import (
    StatusRecorder,
    eventually,
    pinned_session,
    raw_client,
    record_requests,
    session_count,
    user_count,
)
from tests.support.proxy import Direction, TcpProxy

PASSWORD = "password123"


def of_type(requests: list[Request], kind: type[Request]) -> list[Request]:
    """The requests of one type."""
    return [request for request in requests if isinstance(request, kind)]


@pytest.fixture
async def proxy(server: PixmartServer) -> AsyncIterator[TcpProxy]:
    """A breakable TCP proxy in front of ``server``."""
    async with TcpProxy(server.port) as instance:
        yield instance


# -- connection status -------------------------------------------------------------------------


async def test_status_reports_connected_and_reconnecting(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    await logged_in(make_session, "una")  # the account to resume below
    session = Session(
        f"wss://127.0.0.1:{server.port}",
        TrustPolicy(fingerprint=server.fingerprint),
        backoff=TEST_BACKOFF,
    )
    recorder = StatusRecorder(session)
    await session.connect()
    try:
        await session.login("una", PASSWORD)
        assert recorder.states() == [
            ConnectionState.DISCONNECTED,
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
        ]
        connected = recorder.history[-1]
        assert connected.tls_version == "TLSv1.3"
        assert connected.fingerprint == server.fingerprint
        assert connected.server == f"127.0.0.1:{server.port}"
        assert session.connected

        mark = recorder.mark()
        dropped_at = time.time()
        session.abort_transport()
        reconnecting = await recorder.wait_for(ConnectionState.RECONNECTING, since=mark)
        assert reconnecting.reason == "the connection was lost"
        assert reconnecting.attempt == 0
        assert reconnecting.next_attempt_at is not None
        assert dropped_at <= reconnecting.next_attempt_at <= time.time() + TEST_BACKOFF.initial
        assert reconnecting.tls_version is None and reconnecting.fingerprint is None

        again = await recorder.wait_for(ConnectionState.CONNECTED, since=mark)
        assert again.tls_version == "TLSv1.3"
        assert again.fingerprint == server.fingerprint
        assert recorder.states(mark) == [ConnectionState.RECONNECTING, ConnectionState.CONNECTED]
        # Resumed with the token: no second login needed.
        assert (await session.whoami()).username == "una"
    finally:
        await session.close()
    assert session.status.state is ConnectionState.DISCONNECTED


async def test_a_broken_listener_does_not_break_the_session(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    session = await logged_in(make_session, "victor")
    recorder = StatusRecorder(session)

    def broken(_: object) -> None:
        raise RuntimeError("listener bug")

    session.on_status(broken)
    mark = recorder.mark()
    session.abort_transport()
    await recorder.wait_for(ConnectionState.CONNECTED, since=mark)
    assert (await session.whoami()).username == "victor"


# -- the first connection ----------------------------------------------------------------------


def session_through(proxy: TcpProxy, server: PixmartServer, **kwargs: object) -> Session:
    """A session (not yet connected) that reaches ``server`` through ``proxy``."""
    kwargs.setdefault("backoff", TEST_BACKOFF)
    return Session(
        f"wss://127.0.0.1:{proxy.port}",
        TrustPolicy(fingerprint=server.fingerprint),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_first_connection_cut_on_the_way_is_a_drop_and_resumes(
    server: PixmartServer, proxy: TcpProxy, make_session: SessionFactory
) -> None:
    """Cut while the server's side of the handshakes is on its way: reconnecting, then in."""
    token = (await logged_in(make_session, "ida")).token
    session = session_through(proxy, server, token=token)
    recorder = StatusRecorder(session)
    proxy.drop(Direction.DOWNSTREAM)
    connecting = asyncio.create_task(session.connect())
    await proxy.wait_dropped(Direction.DOWNSTREAM)
    proxy.cut()
    try:
        async with asyncio.timeout(5):
            await connecting
        assert recorder.states() == [
            ConnectionState.DISCONNECTED,
            ConnectionState.CONNECTING,
            ConnectionState.RECONNECTING,
            ConnectionState.CONNECTED,
        ]
        assert recorder.history[2].reason == "the connection was lost"
        assert session.established
        assert (await session.whoami()).username == "ida"  # the saved login was resumed
    finally:
        await session.close()


async def test_a_first_connection_refused_fails_at_once(
    server: PixmartServer, proxy: TcpProxy
) -> None:
    """Nothing listens at the address: the person is told at once, nothing is retried."""
    session = session_through(proxy, server)
    recorder = StatusRecorder(session)
    await proxy.close()
    with pytest.raises(ConnectionRefusedError):
        await session.connect()
    assert recorder.states() == [
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        ConnectionState.OFFLINE,
    ]
    assert not session.established


async def test_a_first_connection_cut_then_refused_gives_up_after_the_open_timeout(
    server: PixmartServer, proxy: TcpProxy
) -> None:
    """After a cut the next attempts are reconnects, whatever stops them, but only for as long
    as a first connection is given (``open_timeout``): then it is offline, with the reason."""
    session = session_through(proxy, server, open_timeout=0.5)
    recorder = StatusRecorder(session)
    proxy.drop(Direction.DOWNSTREAM)
    connecting = asyncio.create_task(session.connect())
    await proxy.wait_dropped(Direction.DOWNSTREAM)
    await proxy.close()  # cuts the connection; the address refuses from now on
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(5):  # tried for 0.5 s, not for ever
            await connecting
    states = recorder.states()
    assert states[:3] == [
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        ConnectionState.RECONNECTING,
    ]
    assert states[-1] is ConnectionState.OFFLINE and ConnectionState.CONNECTED not in states
    assert recorder.history[-1].reason == "the server refused the connection (is it running?)"
    assert not session.established


async def test_closing_a_session_whose_first_connection_waits_to_retry(
    server: PixmartServer, proxy: TcpProxy
) -> None:
    session = session_through(proxy, server, backoff=replace(TEST_BACKOFF, initial=30.0))
    recorder = StatusRecorder(session)
    proxy.drop(Direction.DOWNSTREAM)
    connecting = asyncio.create_task(session.connect())
    await proxy.wait_dropped(Direction.DOWNSTREAM)
    proxy.cut()
    await recorder.wait_for(ConnectionState.RECONNECTING)
    await session.close()
    with pytest.raises(Offline):
        async with asyncio.timeout(1):  # woken by close(), not after the 30 s wait
            await connecting
    assert session.status.state is ConnectionState.DISCONNECTED


# -- drops in the middle of a request ----------------------------------------------------------


async def test_lost_reply_is_recovered_and_the_request_applied_once(
    server: PixmartServer, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_requests(server, monkeypatch)
    async with pinned_session(proxy.port, server.fingerprint) as session:
        recorder = StatusRecorder(session)
        mark = recorder.mark()
        proxy.drop(Direction.DOWNSTREAM)
        call = asyncio.create_task(session.create_account("wendy", PASSWORD))
        # The server created the account and its reply was swallowed on the way back.
        await proxy.wait_dropped(Direction.DOWNSTREAM)
        assert await user_count(server, "wendy") == 1
        assert not call.done()

        proxy.cut()
        async with asyncio.timeout(5):
            user = await call  # success, not "the username is taken"
        assert user.username == "wendy"
        assert await user_count(server, "wendy") == 1
        # It really was a reconnect and a retry, answered from the replay cache.
        assert ConnectionState.RECONNECTING in recorder.states(mark)
        assert proxy.accepted == 2
        retried = of_type(seen, CreateAccount)
        assert len(retried) == 2 and retried[0] == retried[1]
        # The new connection is fully usable.
        assert (await session.login("wendy", PASSWORD)).username == "wendy"


async def test_lost_request_is_sent_again_after_the_reconnect(
    server: PixmartServer,
    proxy: TcpProxy,
    make_session: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await (await make_session()).create_account("xavier", PASSWORD)
    seen = record_requests(server, monkeypatch)
    async with pinned_session(proxy.port, server.fingerprint) as session:
        proxy.drop(Direction.UPSTREAM)
        call = asyncio.create_task(session.login("xavier", PASSWORD))
        await proxy.wait_dropped(Direction.UPSTREAM)
        assert of_type(seen, Login) == []  # it never reached the server
        proxy.cut()
        async with asyncio.timeout(5):
            user = await call
        assert user.username == "xavier"
        assert len(of_type(seen, Login)) == 1
        assert await session_count(server, "xavier") == 1
        assert (await session.whoami()).username == "xavier"


async def test_lost_login_reply_opens_one_session_and_authenticates_the_new_link(
    server: PixmartServer,
    proxy: TcpProxy,
    make_session: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await (await make_session()).create_account("yvonne", PASSWORD)
    seen = record_requests(server, monkeypatch)
    async with pinned_session(proxy.port, server.fingerprint) as session:
        proxy.drop(Direction.DOWNSTREAM)
        call = asyncio.create_task(session.login("yvonne", PASSWORD))
        await proxy.wait_dropped(Direction.DOWNSTREAM)
        await eventually(lambda: _has_sessions(server, "yvonne", 1))
        proxy.cut()
        async with asyncio.timeout(5):
            await call
        assert len(of_type(seen, Login)) == 2  # the original and the retry
        assert await session_count(server, "yvonne") == 1  # but one session
        # The replayed reply bound the session to the new connection.
        assert (await session.whoami()).username == "yvonne"
        assert session.token is not None


async def _has_sessions(server: PixmartServer, username: str, count: int) -> bool:
    return await session_count(server, username) == count


async def test_retry_while_the_first_attempt_runs_joins_it(
    server: PixmartServer, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_requests(server, monkeypatch)
    started = asyncio.Event()
    release = asyncio.Event()
    runs: list[str] = []
    original: Callable[[str, str, str | None], Awaitable[UserInfo]] = server.accounts.create_account

    async def slow_create(username: str, password: str, address: str | None = None) -> UserInfo:
        runs.append(username)
        started.set()
        await release.wait()
        return await original(username, password, address)

    monkeypatch.setattr(server.accounts, "create_account", slow_create)
    async with pinned_session(proxy.port, server.fingerprint) as session:
        call = asyncio.create_task(session.create_account("zelda", PASSWORD))
        async with asyncio.timeout(5):
            await started.wait()
        proxy.cut()
        # Wait until the retry reached the server while the first attempt is still held.
        await eventually(lambda: _seen_twice(seen))
        release.set()
        async with asyncio.timeout(5):
            user = await call
    assert user.username == "zelda"
    assert runs == ["zelda"]
    assert await user_count(server, "zelda") == 1


async def _seen_twice(seen: list[Request]) -> bool:
    return len(of_type(seen, CreateAccount)) == 2


async def test_replay_cache_answers_a_retry_and_refuses_a_reused_id(
    server: PixmartServer,
) -> None:
    request = CreateAccount(id=7, username="amber", password=PASSWORD)
    async with raw_client(server) as first:
        await first.hello()
        original = await first.call(request)
        assert isinstance(original, AccountCreated)
        client_id = first.client_id
    # Same client instance (client_id), new connection: the retry gets the same answer.
    async with raw_client(server) as second:
        second.client_id = client_id
        await second.hello()
        replayed = await second.call(request)
        assert replayed == original
        # The same id for a different request is refused, not silently answered.
        clash = await second.call(CreateAccount(id=7, username="amber2", password=PASSWORD))
        assert isinstance(clash, ErrorReply)
        assert clash.code == Conflict.code
        assert "already used" in clash.message
    # Another client instance reusing the id is a new request (and the name is taken).
    async with raw_client(server) as stranger:
        await stranger.hello()
        other = await stranger.call(request)
        assert isinstance(other, ErrorReply) and other.code == Conflict.code
        assert "taken" in other.message
    assert await user_count(server, "amber") == 1
    assert await user_count(server, "amber2") == 0


# -- server restarts and shutdown ----------------------------------------------------------------


async def test_server_restart_on_the_same_port_ends_in_a_resumed_session(
    server_config: ServerConfig,
) -> None:
    first = PixmartServer(server_config)
    port = await first.start()
    fingerprint = first.fingerprint
    second: PixmartServer | None = None
    try:
        async with pinned_session(first) as session:
            await session.create_account("bruno", PASSWORD)
            await session.login("bruno", PASSWORD)
            token = session.token
            recorder = StatusRecorder(session)
            mark = recorder.mark()

            await first.stop()
            reconnecting = await recorder.wait_for(ConnectionState.RECONNECTING, since=mark)
            assert reconnecting.reason == "the server is restarting"
            # A request made while the server is down waits for the link to come back.
            pending = asyncio.create_task(session.whoami())

            second = PixmartServer(replace(server_config, port=port))
            assert await second.start() == port
            assert second.fingerprint == fingerprint  # same data dir, same certificate
            connected = await recorder.wait_for(ConnectionState.CONNECTED, since=mark)
            assert connected.fingerprint == fingerprint
            async with asyncio.timeout(5):
                assert (await pending).username == "bruno"
            assert (await session.whoami()).username == "bruno"
            assert session.token == token
            assert ConnectionState.OFFLINE not in recorder.states(mark)
    finally:
        if second is not None:
            await second.stop()
        await first.stop()


async def test_graceful_stop_closes_with_going_away(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    session = await logged_in(make_session, "carmen")
    recorder = StatusRecorder(session)
    mark = recorder.mark()
    async with raw_client(server) as raw:
        await raw.hello()
        await server.stop()
        with pytest.raises(ConnectionClosed) as closed:
            await raw.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    status = await recorder.wait_for(ConnectionState.RECONNECTING, since=mark)
    assert status.reason == "the server is restarting"
    assert ConnectionState.OFFLINE not in recorder.states(mark)
    assert not session.connected


async def test_graceful_stop_finishes_requests_in_flight(
    server: PixmartServer, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_requests(server, monkeypatch)
    started = asyncio.Event()
    release = asyncio.Event()
    original = server.accounts.create_account

    async def slow_create(username: str, password: str, address: str | None = None) -> UserInfo:
        started.set()
        await release.wait()
        return await original(username, password, address)

    monkeypatch.setattr(server.accounts, "create_account", slow_create)
    session = await make_session()
    call = asyncio.create_task(session.create_account("dora", PASSWORD))
    async with asyncio.timeout(5):
        await started.wait()
    stopping = asyncio.create_task(server.stop())
    # The server stopped listening, so it is now waiting for the request in flight.
    port = server.port
    await eventually(lambda: _refuses_connections(port))
    release.set()
    async with asyncio.timeout(5):
        user = await call
        await stopping
    # Answered on the original connection before it closed: no retry, and the server is gone.
    assert user.username == "dora"
    assert len(of_type(seen, CreateAccount)) == 1
    assert not session.connected


async def _refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.transport.abort()
    return False
