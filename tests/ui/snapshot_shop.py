"""Provides what the snapshot tests share: a server with a fixed certificate (so a fixed
fingerprint), the saved session of a seller stocked on it, and a ``snap_compare`` that writes the
server's random port as ``PORT``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_textual_snapshot
from textual.pilot import Pilot

from backend.config import Limits, ServerConfig, SessionPolicy
from protocol.client import Session
from protocol.trust import TrustPolicy
from tests.ui.conftest import SIZE
from tests.ui.threaded_server import ThreadedServer
from tui.app import PixmartApp

FIXTURES = Path(__file__).parent / "fixtures"
SnapCompare = Callable[..., bool]
#: The password of every account the snapshot shops make.
PASSWORD = "password123"
RunBefore = Callable[[Pilot[None]], Awaitable[None]]


@dataclass
class SnapshotShop:
    """The snapshot server and the saved session of its seller."""

    server: ThreadedServer
    token: str


def snapshot_config(root: Path) -> ServerConfig:
    """A server without the image model, with the fixed certificate, its data under ``root``."""
    return ServerConfig(
        data_dir=root / "data",
        port=0,
        enable_vision=False,
        limits=Limits(),
        sessions=SessionPolicy(),
        cert_file=FIXTURES / "snapshot-server-cert.pem",
        key_file=FIXTURES / "snapshot-server-key.pem",
    )


async def new_account(server: ThreadedServer, name: str) -> Session:
    """A session to ``server`` (on the caller's loop) logged in as a new account ``name``."""
    session = Session(server.url, TrustPolicy(fingerprint=server.fingerprint))
    await session.connect()
    await session.create_account(name, PASSWORD)
    await session.login(name, PASSWORD)
    return session


def open_shop(
    server: ThreadedServer, stock: Callable[[Session], Awaitable[object]]
) -> SnapshotShop:
    """Make the seller ``ada`` on ``server``, let ``stock`` list her items, keep her session."""

    async def opened() -> str:
        session = await new_account(server, "ada")
        try:
            await stock(session)
            assert session.token is not None
            return session.token
        finally:
            await session.close()

    return SnapshotShop(server=server, token=server.run(opened()))


def comparer(
    snap_compare: SnapCompare, server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> SnapCompare:
    """``snap_compare`` at 120×40 (or ``size``) with half-block pictures and the server port
    written ``PORT``."""
    monkeypatch.setenv("PIXMART_GRAPHICS", "halfcell")
    normalise: Callable[[str], str] = pytest_textual_snapshot.normalize_svg
    port = re.compile(rf"127\.0\.0\.1:{server.port}\b")

    def without_port(svg: str) -> str:
        return normalise(port.sub("127.0.0.1:PORT", svg))

    # The plugin normalises every SVG it stores or compares through this function.
    monkeypatch.setattr(pytest_textual_snapshot, "normalize_svg", without_port)

    def compare(app: PixmartApp, run_before: RunBefore, size: tuple[int, int] = SIZE) -> bool:
        return snap_compare(app, run_before=run_before, terminal_size=size)

    return compare


@contextmanager
def dates_in_utc() -> Iterator[None]:
    """Show local times in UTC while inside (snapshots then read the same in every zone)."""
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if zone is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = zone
        time.tzset()


__all__ = [
    "FIXTURES",
    "PASSWORD",
    "RunBefore",
    "SnapCompare",
    "SnapshotShop",
    "comparer",
    "dates_in_utc",
    "new_account",
    "open_shop",
    "snapshot_config",
]
