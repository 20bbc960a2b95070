"""A session that sends faster than its connection may is slowed down, not failed.

The server refuses such requests before running them (``rate_limited`` with a short
``retry_after``), so the session waits as told and sends them again; a long wait (a login
lockout) still reaches the caller.
"""

from __future__ import annotations

import asyncio

import pytest

from backend.config import ServerConfig
from tests.conftest import SessionFactory, logged_in, with_limits


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """A connection may send 20 requests a second, 5 at once."""
    return with_limits(server_config, request_rate=20.0, request_burst=5)


async def test_requests_beyond_the_rate_are_sent_again_after_the_wait(
    make_session: SessionFactory,
) -> None:
    session = await logged_in(make_session, "hasty")
    started = asyncio.get_running_loop().time()
    users = await asyncio.gather(*(session.whoami() for _ in range(25)))
    elapsed = asyncio.get_running_loop().time() - started
    assert {user.username for user in users} == {"hasty"}
    # 25 requests at 20/s with 5 saved up cannot all have gone through at once.
    assert elapsed >= 0.5
