"""Session tokens: resuming, idle and absolute expiry, and revocation by logout.

Proves that a token from a login resumes on a new connection without the password; that once
the idle expiry or the absolute expiry has passed the token no longer resumes (``unauthenticated``)
and an open connection that used it is logged out too; that activity keeps an idle-expiring
session alive; and that a :class:`Session` created with a revoked or expired token still
connects, but ends up logged out with its token cleared (and token listeners told).

The expiry tests wait out lifetimes of a fraction of a second: the passing of time is what they
test, so they sleep for it rather than synchronise on it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import ConnectionState, Session
from protocol.errors import Unauthenticated
from protocol.messages.accounts import Resume, Resumed
from protocol.trust import TrustPolicy
from tests.conftest import SessionFactory, logged_in
from tests.support import pinned_session, running_server, session_count

PASSWORD = "password123"


def _lifetimes(config: ServerConfig, *, idle: float, absolute: float) -> ServerConfig:
    return replace(
        config, sessions=replace(config.sessions, idle_expiry=idle, absolute_expiry=absolute)
    )


async def test_a_token_resumes_on_a_new_connection(
    make_session: SessionFactory, server: PixmartServer
) -> None:
    first = await logged_in(make_session, "mallory")
    second = await make_session(token=first.token)
    assert second.user is not None
    assert second.user.username == "mallory"
    assert second.token == first.token
    assert (await second.whoami()).id == first.user.id  # type: ignore[union-attr]
    # Resuming does not open a second session.
    assert await session_count(server, "mallory") == 1


async def test_resume_reports_the_absolute_expiry(make_session: SessionFactory) -> None:
    session = await logged_in(make_session, "nadia")
    assert session.token is not None
    resumed = await session.request(Resume(token=session.token), Resumed)
    assert resumed.user.username == "nadia"
    # The default absolute expiry is 90 days away.
    assert resumed.expires_at > time.time() + 89 * 24 * 3600
    with pytest.raises(Unauthenticated):
        await session.request(Resume(token="not-a-token-anybody-issued"), Resumed)


async def test_logout_revokes_the_token(
    make_session: SessionFactory, server: PixmartServer
) -> None:
    session = await logged_in(make_session, "oscar")
    token = session.token
    other = await make_session(token=token)
    assert other.user is not None
    await session.logout()
    assert await session_count(server, "oscar") == 0
    # The other connection bound to the same session is logged out with it.
    with pytest.raises(Unauthenticated):
        await other.whoami()
    assert token is not None
    with pytest.raises(Unauthenticated):
        await other.request(Resume(token=token), Resumed)


async def test_a_session_with_a_revoked_token_connects_logged_out(
    make_session: SessionFactory,
) -> None:
    session = await logged_in(make_session, "peggy")
    token = session.token
    await session.logout()

    revoked = await make_session(token=token)
    assert revoked.status.state is ConnectionState.CONNECTED
    assert revoked.user is None
    assert revoked.token is None
    with pytest.raises(Unauthenticated):
        await revoked.whoami()
    # It can log in again on the same connection.
    assert (await revoked.login("peggy", PASSWORD)).username == "peggy"


async def test_token_listeners_hear_that_a_token_was_dropped(
    make_session: SessionFactory, server: PixmartServer
) -> None:
    session = await logged_in(make_session, "quentin")
    token = session.token
    await session.logout()

    fresh = Session(session.url, TrustPolicy(fingerprint=server.fingerprint), token=token)
    heard: list[str | None] = []
    fresh.on_token(heard.append)
    await fresh.connect()
    try:
        assert heard == [None]  # e.g. the CLI deletes its saved token here
        assert fresh.token is None
    finally:
        await fresh.close()


async def test_absolute_expiry_ends_the_session(server_config: ServerConfig) -> None:
    config = _lifetimes(server_config, idle=3600.0, absolute=0.4)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("rupert", PASSWORD)
        await session.login("rupert", PASSWORD)
        token = session.token
        assert token is not None
        assert (await session.whoami()).username == "rupert"
        await asyncio.sleep(0.5)
        # The open connection is logged out on its next request ...
        with pytest.raises(Unauthenticated, match="expired"):
            await session.whoami()
        # ... and the token no longer resumes anywhere.
        with pytest.raises(Unauthenticated):
            await session.request(Resume(token=token), Resumed)
        async with pinned_session(server, token=token) as later:
            assert later.user is None
            assert later.token is None
        assert await session_count(server, "rupert") == 0


async def test_idle_expiry_ends_an_unused_session_only(server_config: ServerConfig) -> None:
    idle = 0.4
    config = _lifetimes(server_config, idle=idle, absolute=3600.0)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("sybil", PASSWORD)
        await session.login("sybil", PASSWORD)
        token = session.token
        # Used every 0.1 s for longer than the idle expiry: still alive.
        loop = asyncio.get_running_loop()
        busy_until = loop.time() + idle * 1.5
        while loop.time() < busy_until:
            assert (await session.whoami()).username == "sybil"
            await asyncio.sleep(0.1)
        async with pinned_session(server, token=token) as resumed:
            assert resumed.user is not None and resumed.user.username == "sybil"
        # Left alone for longer than the idle expiry: gone.
        await asyncio.sleep(idle + 0.15)
        async with pinned_session(server, token=token) as later:
            assert later.user is None
            assert later.token is None
        with pytest.raises(Unauthenticated):
            await session.whoami()
        assert await session_count(server, "sybil") == 0
