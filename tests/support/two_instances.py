"""Provides :class:`Cluster` and :func:`two_instances`: two servers in one process on one database.

For the tests of what crosses instances (live events, ended sessions, notices): instances A and
B share a fresh PostgreSQL database, each with a data dir of its own, and hand out sessions that
are closed with them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.config import ServerConfig, SessionPolicy
from backend.server import PixmartServer
from protocol.client import Session
from tests.support import TEST_LIMITS, pinned_session, running_server
from tests.support.commerce import PASSWORD


def instance_config(pg_url: str, data_dir: Path) -> ServerConfig:
    """One instance on ``pg_url``, without the image model, its data under ``data_dir``."""
    return ServerConfig(
        database=pg_url,
        data_dir=data_dir,
        port=0,
        enable_vision=False,
        limits=TEST_LIMITS,
        sessions=SessionPolicy(
            max_accounts_per_address=10_000,
            max_accounts_total=10_000,
            # No sweep finds a session's row gone during a test: only the bus can end it.
            sweep_interval=3600.0,
        ),
    )


@dataclass
class Cluster:
    """Two running instances on one database, and sessions connected to either."""

    a: PixmartServer
    b: PixmartServer
    stack: AsyncExitStack

    async def session(self, server: PixmartServer, **kwargs: Any) -> Session:
        """A connected session to ``server``, closed with the cluster."""
        return await self.stack.enter_async_context(pinned_session(server, **kwargs))

    async def user(self, server: PixmartServer, username: str, *, new: bool = True) -> Session:
        """A session to ``server`` logged in as ``username`` (signed up first if ``new``)."""
        session = await self.session(server)
        if new:
            await session.create_account(username, PASSWORD)
        await session.login(username, PASSWORD)
        return session


@asynccontextmanager
async def two_instances(pg_url: str, root: Path) -> AsyncIterator[Cluster]:
    """Instances A and B on the database ``pg_url``, their data dirs ``root/a`` and ``root/b``."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_server(instance_config(pg_url, root / "a")))
        b = await stack.enter_async_context(running_server(instance_config(pg_url, root / "b")))
        yield Cluster(a, b, stack)
