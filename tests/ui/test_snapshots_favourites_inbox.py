"""Provides snapshot tests of the favourites and inbox screens, at 120x40 and 80x24.

A shop of their own (``dee`` sells, ``eve`` keeps favourites), so the other snapshots' catalogue
stays as it is. ``eve`` kept three prints; ``dee`` then made one cheaper, restocked a sold-out
one and deleted the third, so ``eve``'s inbox holds two notices (dated at fixed times, shown in
UTC) and her favourites show one deleted item. Nondeterminism is removed as in
``test_snapshots``: a fixed certificate, the port written ``PORT``, generated pictures,
half-blocks, no blinking cursors, notifications cleared.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.pilot import Pilot

from protocol import favourites_client
from protocol.catalogue_client import delete_items, edit_item
from tests.ui.conftest import until
from tests.ui.seed import SeedItem, seed
from tests.ui.snapshot_shop import SnapCompare, SnapshotShop, comparer, dates_in_utc, new_account
from tests.ui.test_snapshots import (
    _start_server,
    in_gallery,
    make_app,
    placeholders_once_shown,
    settle,
)
from tests.ui.threaded_server import ThreadedServer
from tui.app import PixmartApp
from tui.screens import FavouritesScreen, InboxScreen
from tui.widgets import CatalogueView, ItemTile, Picture

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

#: ``dee``'s items: title, price, stock; ``eve`` keeps the first three.
KEPT_ITEMS = [
    ("Harbour at dawn", 2200, 4),
    ("Red kite", 1500, 0),
    ("Salt marsh", 900, 2),
    ("Chalk cliffs", 1900, 5),
]
#: When the two notices were delivered (UTC): the price drop, then the restock.
NOTICE_TIMES = [
    calendar.timegm((2026, 11, 24, 8, 15, 0)),
    calendar.timegm((2026, 11, 25, 17, 40, 0)),
]
NARROW = (80, 24)


@dataclass
class Keepers:
    """The snapshot server with ``eve``'s saved session."""

    server: ThreadedServer
    eve: SnapshotShop


@pytest.fixture(scope="module")
def keepers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keepers]:
    """``dee`` sells four prints; ``eve`` keeps three, which then change (see the module)."""
    root = tmp_path_factory.mktemp("snapshot-keepers")
    server = _start_server(root)

    async def open_shop() -> str:
        dee, eve = await new_account(server, "dee"), await new_account(server, "eve")
        try:
            items = [
                SeedItem(index=60 + n, title=title, price_cents=price, stock=stock, tags=["print"])
                for n, (title, price, stock) in enumerate(KEPT_ITEMS)
            ]
            harbour, kite, marsh, _cliffs = [
                card.id for card in await seed(dee, items, root / "pictures")
            ]
            for item_id in (marsh, kite, harbour):
                await favourites_client.add_favourite(eve, item_id)
            await edit_item(dee, harbour, price_cents=1800)
            await edit_item(dee, kite, stock=3)
            await delete_items(dee, [marsh])
            assert server.server is not None
            rows = await server.server.db.fetchall("SELECT id FROM notices ORDER BY id")
            for row, when in zip(rows, NOTICE_TIMES, strict=True):
                await server.server.db.execute(
                    "UPDATE notices SET created_at = ? WHERE id = ?", (when, row[0])
                )
            assert eve.token is not None
            return eve.token
        finally:
            await dee.close()
            await eve.close()

    try:
        yield Keepers(server=server, eve=SnapshotShop(server=server, token=server.run(open_shop())))
    finally:
        server.stop()


@pytest.fixture
def keeper_snap(
    snap_compare: SnapCompare, keepers: Keepers, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SnapCompare]:
    """``snap_compare`` for this shop, with dates shown in UTC."""
    with dates_in_utc():
        yield comparer(snap_compare, keepers.server, monkeypatch)


async def in_favourites(pilot: Pilot[None]) -> CatalogueView:
    """Wait for the gallery, press ``F`` and wait for the three favourites."""
    app = pilot.app
    await in_gallery(pilot)
    await pilot.press("F")
    await until(
        pilot,
        lambda: isinstance(app.screen, FavouritesScreen) and bool(app.screen.query(CatalogueView)),
        what="the favourites",
    )
    view = app.screen.query_one(CatalogueView)
    await until(pilot, lambda: view.listing is not None and len(view.listing) == 3)
    return view


def kept_pictures_shown(app: PixmartApp) -> bool:
    """Whether every visible card with a picture shows it (a deleted item's card has none)."""
    tiles = [tile for tile in app.screen.query(ItemTile) if tile.card and tile.card.thumbnail]
    return len(tiles) == 2 and all(tile.query_one(Picture).picture is not None for tile in tiles)


async def kept_pictures_as_placeholders(pilot: Pilot[None]) -> None:
    """Every card's picture as its placeholder box, for the layout snapshot (as
    ``test_snapshots.pictures_as_placeholders`` does, for a grid with a pictureless card)."""
    await placeholders_once_shown(pilot, kept_pictures_shown)


async def in_inbox(pilot: Pilot[None]) -> None:
    """Wait for the gallery, press ``i`` and wait for the two notices."""
    app = pilot.app
    assert isinstance(app, PixmartApp)
    await in_gallery(pilot)
    await until(pilot, lambda: app.unread_count == 2, what="the unread count")
    await pilot.press("i")
    await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="the inbox")
    screen = app.screen
    assert isinstance(screen, InboxScreen)
    await until(pilot, lambda: screen.notices.table.row_count == 2, what="the notices")


def test_favourites(keeper_snap: SnapCompare, keepers: Keepers, tmp_path: Path) -> None:
    """eve's favourites, newest first, each marked ♥ on its frame: Harbour at dawn (€18.00, 4
    in stock) and Red kite (€15.00, 3 in stock) with their pictures, then a card titled
    "(deleted) Salt marsh" at the €9.00 it had, sold out. The header says "inbox 2" (in
    colour); the status line "3 of 3 · your favourites, newest first"; the footer has f
    Favourite and i Inbox. The deleted card says "no picture" where the picture goes."""
    app = make_app(keepers.eve, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_favourites(pilot)
        assert isinstance(app, PixmartApp)
        await until(pilot, lambda: kept_pictures_shown(app), what="the pictures")
        await until(pilot, lambda: app.unread_count == 2, what="the unread count")
        await settle(pilot)

    assert keeper_snap(app, run_before)


def test_favourites_at_80x24(keeper_snap: SnapCompare, keepers: Keepers, tmp_path: Path) -> None:
    """The same favourites in 80x24: the cards in as many columns as fit (pictures as
    placeholder boxes: this one is about the layout), the header and footer on one line each."""
    app = make_app(keepers.eve, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_favourites(pilot)
        assert isinstance(app, PixmartApp)
        await until(pilot, lambda: app.unread_count == 2, what="the unread count")
        await kept_pictures_as_placeholders(pilot)
        await settle(pilot)

    assert keeper_snap(app, run_before, NARROW)


def test_inbox(keeper_snap: SnapCompare, keepers: Keepers, tmp_path: Path) -> None:
    """eve's inbox, newest first, both unread (● and bold): 2026-11-25 17:40 "back in stock"
    #2 "'Red kite' is back in stock (3 left)", then 2026-11-24 08:15 "price drop"
    #1 "'Harbour at dawn' now costs €18.00 (was €22.00)"; status "2 notices · 2
    unread"; the footer offers n More, r Refresh, space Read, A All read, C Clear."""
    app = make_app(keepers.eve, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_inbox(pilot)
        await settle(pilot)

    assert keeper_snap(app, run_before)


def test_inbox_at_80x24(keeper_snap: SnapCompare, keepers: Keepers, tmp_path: Path) -> None:
    """The same inbox in 80x24: the notice column cut at the right edge, the header's
    "inbox 2" still shown, every key in two footer rows (F Favourites and ^p palette last)."""
    app = make_app(keepers.eve, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_inbox(pilot)
        await settle(pilot)

    assert keeper_snap(app, run_before, NARROW)
