"""Provides the snapshot of a warm reopen while the server is out of reach (issue #21).

The gallery saved by the seller's last visit (the snapshot server's first twelve cards, saved at
a fixed time and shown in UTC) is written into the app's cache under the address of a server
that refuses connections (port 1 on loopback), pinned to the snapshot server's certificate: the
app shows it at once, marked offline, and tries again only after a minute, so the picture holds
still.
"""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from protocol.catalogue_client import browse
from protocol.client import Backoff, Session
from protocol.trust import TrustPolicy
from tests.ui.conftest import until
from tests.ui.seed import demo_items, seed
from tests.ui.snapshot_shop import (
    SnapCompare,
    SnapshotShop,
    comparer,
    dates_in_utc,
    open_shop,
    snapshot_config,
)
from tests.ui.test_snapshots import pictures_shown, settle
from tests.ui.threaded_server import ThreadedServer
from tui.app import PixmartApp
from tui.data.gallery_cache import thumbnail_digest
from tui.data.gallery_snapshot import GallerySnapshots
from tui.data.picture_cache import DiskPictureCache, server_namespace
from tui.launch import build_app
from tui.screens import GalleryScreen
from tui.store import ClientStore
from tui.widgets.status_header import StatusHeader

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

#: Nothing listens there: every connection is refused at once.
UNREACHABLE = "wss://127.0.0.1:1"
SAVED_AT = calendar.timegm((2026, 12, 1, 9, 30, 0, 0, 0, 0))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotShop]:
    """The snapshot server with ``ada`` selling 12 generated pictures."""
    root = tmp_path_factory.mktemp("snapshot-reopen-server")
    server = ThreadedServer(snapshot_config(root)).start()
    try:
        yield open_shop(server, lambda session: seed(session, demo_items(12), root / "pictures"))
    finally:
        server.stop()


@pytest.fixture
def snap(
    snap_compare: SnapCompare, shop: SnapshotShop, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SnapCompare]:
    """``snap_compare`` with half-block pictures, the port written ``PORT``, times in UTC."""
    with dates_in_utc():
        yield comparer(snap_compare, shop.server, monkeypatch)


def save_gallery(shop: SnapshotShop, cache: Path) -> None:
    """Save ``ada``'s first batch as her last visit to :data:`UNREACHABLE`, pictures on disk."""

    async def first_batch() -> None:
        session = Session(
            shop.server.url, TrustPolicy(fingerprint=shop.server.fingerprint), token=shop.token
        )
        await session.connect()
        try:
            batch = await browse(session, limit=12)
            assert session.user is not None
            namespace = server_namespace(UNREACHABLE, f"sha256:{shop.server.fingerprint}")
            disk = DiskPictureCache(cache / "pictures", namespace)
            digests = [thumbnail_digest(card) for card in batch.items]
            for card, digest in zip(batch.items, digests, strict=True):
                assert card.thumbnail is not None and disk.write(digest, card.thumbnail)
            GallerySnapshots(cache / "galleries" / namespace).save(
                session.user, shop.token, batch.items, digests, batch.total, now=SAVED_AT
            )
        finally:
            await session.close()

    asyncio.run(first_batch())


def test_gallery_saved_and_offline(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """Reopened while the server is out of reach: the gallery of the last visit shows at once,
    every card with its picture; the header says ``✕ offline · saved gallery from 09:30`` beside
    the title and ``✕ offline: the server refused the connection`` on the right."""
    cache = tmp_path / "cache"
    save_gallery(shop, cache)
    store = ClientStore(tmp_path / "client")
    store.save_token(UNREACHABLE, shop.token)
    app: PixmartApp = build_app(
        store=store,
        trust=TrustPolicy(fingerprint=shop.server.fingerprint, known=store.known_servers),
        server_url=UNREACHABLE,
        backoff=Backoff(initial=60.0, maximum=60.0),  # no new attempt while the picture is taken
        cache_root=cache,
    )

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        await until(pilot, lambda: pictures_shown(app), what="the saved pictures")
        header = app.screen.query_one(StatusHeader)
        await until(pilot, lambda: "offline" in header.marked, what="the offline mark")
        await settle(pilot)

    assert snap(app, run_before)
