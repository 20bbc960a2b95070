"""Provides the UI test fixtures: apps wired like ``pixmart`` against a real server on port 0.

The server runs without the image model unless a module asks for it with :func:`with_vision`
(the model is then built once per test session, in a shared folder).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from textual.pilot import Pilot

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import Session
from protocol.messages.catalogue import ItemCard
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.ui.seed import demo_items, seed
from tests.unit.vision_fixtures import shared_cache_dir
from tui.app import PixmartApp
from tui.launch import build_app
from tui.screens import GalleryScreen
from tui.store import ClientStore
from tui.widgets import CatalogueView

#: Pilot tests use the size the snapshots use.
SIZE = (120, 40)

AppFactory = Callable[..., PixmartApp]


def with_vision(config: ServerConfig, factory: pytest.TempPathFactory) -> ServerConfig:
    """``config`` with the image model on; the converted model is shared by the test session.

    A module overrides ``server_config`` with it to run every server of its tests with vision.
    """
    return replace(config, enable_vision=True, model_cache_dir=shared_cache_dir(factory))


def url_of(server: PixmartServer) -> str:
    """The ``wss://`` address of a test server."""
    return f"wss://127.0.0.1:{server.port}"


@pytest.fixture
def ui_store(tmp_path: Path) -> ClientStore:
    """The client's remembered state, in the test's own directory."""
    return ClientStore(tmp_path / "tui-config")


@pytest.fixture
def make_app(server: PixmartServer, ui_store: ClientStore) -> AppFactory:
    """Build apps the way ``pixmart`` does; by default the server is known and pinned (--trust)."""

    def factory(
        *,
        trust: TrustPolicy | None = None,
        server_url: str | None = "",
        store: ClientStore | None = None,
        listing_batch: int | None = None,
        upload_root: Path | None = None,
    ) -> PixmartApp:
        store = store or ui_store
        if trust is None:
            trust = TrustPolicy(fingerprint=server.fingerprint, known=store.known_servers)
        return build_app(
            store=store,
            trust=trust,
            server_url=url_of(server) if server_url == "" else server_url,
            backoff=TEST_BACKOFF,
            listing_batch=listing_batch,
            upload_root=upload_root,
        )

    return factory


async def until(
    pilot: Pilot[None], condition: Callable[[], object], *, timeout: float = 15.0, what: str = ""
) -> None:
    """Let the app run until ``condition()`` holds (bounded polling, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.01)


async def open_gallery(pilot: Pilot[None], app: PixmartApp) -> CatalogueView:
    """Wait for the gallery and its first batch; its view."""
    await until(
        pilot,
        lambda: isinstance(app.screen, GalleryScreen) and bool(app.screen.query(CatalogueView)),
        what="the gallery",
    )
    view = app.screen.query_one(CatalogueView)
    await until(pilot, lambda: view.listing is not None and view.listing.batches >= 1)
    return view


async def type_text(pilot: Pilot[None], text: str) -> None:
    """Type ``text`` key by key into the focused widget."""
    await pilot.press(*[_key(ch) for ch in text])


def _key(ch: str) -> str:
    return {" ": "space", "?": "question_mark", "/": "slash", ".": "full_stop"}.get(ch, ch)


@dataclass
class Shop:
    """A seller with items, and how to get the app in as that seller."""

    seller: Session
    cards: list[ItemCard]
    url: str


@pytest.fixture
async def make_shop(
    server: PixmartServer, make_session: SessionFactory, ui_store: ClientStore, tmp_path: Path
) -> Callable[..., Awaitable[Shop]]:
    """Seed ``count`` demo items as a fresh seller whose saved session the app will resume."""

    async def factory(count: int, *, username: str = "seller") -> Shop:
        seller = await logged_in(make_session, username)
        cards = await seed(seller, demo_items(count), tmp_path / "pictures")
        assert seller.token is not None
        ui_store.save_token(url_of(server), seller.token)
        return Shop(seller=seller, cards=cards, url=url_of(server))

    return factory
