"""Shared fixtures: a real TLS server on port 0 with its own data dir, and client sessions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from backend.config import Limits, ServerConfig, SessionPolicy
from backend.server import PixmartServer
from protocol.client import Backoff, Session
from protocol.trust import TrustPolicy

#: Fast reconnects in tests; the production default starts at half a second.
TEST_BACKOFF = Backoff(initial=0.02, factor=2.0, maximum=0.2)


@pytest.fixture(autouse=True)
def _isolated_client_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the real user config and data dirs."""
    monkeypatch.setenv("PIXMART_CONFIG_DIR", str(tmp_path / "client-config"))
    monkeypatch.setenv("PIXMART_DATA_DIR", str(tmp_path / "default-data"))
    os.environ.pop("PIXMART_SERVER", None)


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """A config for a server on a free loopback port, without the image model."""
    return ServerConfig(
        data_dir=tmp_path / "server-data",
        port=0,
        enable_vision=False,
        # Tests connect many clients at once from one loopback address; the per-address cap on
        # connections not logged in has its own tests (tests/fault/test_edge_connections.py).
        limits=Limits(max_unauthenticated_per_address=1_000),
        # Tests sign up many users from one loopback address; the sign-up limits have their
        # own tests (tests/fault/test_edge_accounts.py), which put the defaults back.
        sessions=SessionPolicy(max_accounts_per_address=10_000, max_accounts_total=10_000),
    )


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[PixmartServer]:
    """A running server with image search warmed up if on; stopped gracefully after the test."""
    instance = PixmartServer(server_config)
    await instance.start()
    await instance.vision_ready()
    try:
        yield instance
    finally:
        await instance.stop()


SessionFactory = Callable[..., Awaitable[Session]]


@pytest.fixture
async def make_session(server: PixmartServer) -> AsyncIterator[SessionFactory]:
    """Connect sessions to ``server`` that pin its fingerprint; all closed after the test."""
    sessions: list[Session] = []

    async def factory(**kwargs: object) -> Session:
        url = str(kwargs.pop("url", f"wss://127.0.0.1:{server.port}"))
        trust = kwargs.pop("trust", None) or TrustPolicy(fingerprint=server.fingerprint)
        kwargs.setdefault("backoff", TEST_BACKOFF)
        session = Session(url, trust, **kwargs)  # type: ignore[arg-type]
        await session.connect()
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.close()


async def logged_in(
    make_session: SessionFactory, username: str, password: str = "password123"
) -> Session:
    """A session logged in as a fresh account ``username``."""
    session = await make_session()
    await session.create_account(username, password)
    await session.login(username, password)
    return session


def with_limits(config: ServerConfig, **changes: object) -> ServerConfig:
    """``config`` with some limits changed."""
    return replace(config, limits=replace(config.limits, **changes))  # type: ignore[arg-type]
