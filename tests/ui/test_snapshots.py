"""Provides snapshot tests of every screen against a real server with fixed data and size.

Nondeterminism is removed by fixtures, never by sleeps: the server's certificate is fixed (so is
its fingerprint), its random port is written as ``PORT`` in the stored SVGs, the items are
generated from fixed seeds, pictures use half-blocks, cursors do not blink, and notifications are
cleared before the picture is taken. Each test waits for the state it shows (polling, bounded).
The commerce screens use a second server (a buyer's orders and cart would change the catalogue
the other screens show) whose orders are dated at fixed times, shown in UTC.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, SelectionList, TextArea

from protocol import commerce_client
from protocol.catalogue_client import delete_items, edit_item
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF
from tests.ui.conftest import until
from tests.ui.seed import SeedItem, demo_items, draw_picture, seed
from tests.ui.snapshot_shop import (
    SnapCompare,
    SnapshotShop,
    comparer,
    dates_in_utc,
    new_account,
    open_shop,
    snapshot_config,
)
from tests.ui.threaded_server import ThreadedServer
from tui.app import PixmartApp
from tui.dialogs import EditItemDialog, FingerprintChangedDialog, OrderDialog, TrustDialog
from tui.launch import build_app
from tui.screens import (
    CartScreen,
    GalleryScreen,
    HelpScreen,
    ItemScreen,
    LoginScreen,
    MyItemsScreen,
    OrdersScreen,
    SearchScreen,
    UploadScreen,
)
from tui.screens.gallery import TagSidebar
from tui.store import ClientStore
from tui.widgets import CatalogueView, ItemTile, Picture

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning"),
    pytest.mark.long_running,
]


def _start_server(root: Path) -> ThreadedServer:
    """A server with the fixed certificate, its data under ``root``."""
    return ThreadedServer(snapshot_config(root)).start()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotShop]:
    """A server with a fixed certificate and a seller, ``ada``, selling 12 generated pictures."""
    root = tmp_path_factory.mktemp("snapshot-server")
    server = _start_server(root)
    try:
        yield open_shop(server, lambda session: seed(session, demo_items(12), root / "pictures"))
    finally:
        server.stop()


@pytest.fixture
def snap(
    snap_compare: SnapCompare, shop: SnapshotShop, monkeypatch: pytest.MonkeyPatch
) -> SnapCompare:
    """``snap_compare`` for the catalogue shop (see :func:`comparer`)."""
    return comparer(snap_compare, shop.server, monkeypatch)


def make_app(
    shop: SnapshotShop,
    tmp_path: Path,
    *,
    logged_in: bool = True,
    trust: TrustPolicy | None = None,
    known: bool = True,
    upload_root: Path | None = None,
) -> PixmartApp:
    store = ClientStore(tmp_path / "client")
    if logged_in:
        store.save_token(shop.server.url, shop.token)
    store.remember(username="ada")
    return build_app(
        store=store,
        trust=trust or TrustPolicy(fingerprint=shop.server.fingerprint, known=store.known_servers),
        server_url=shop.server.url if known else None,
        backoff=TEST_BACKOFF,
        upload_root=upload_root,
    )


async def settle(pilot: Pilot[None]) -> None:
    """Stop blinking cursors and drop notifications, so the picture is the same every time."""
    app = pilot.app
    for screen in app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False
        for area in screen.query(TextArea):
            area.cursor_blink = False
    app.clear_notifications()
    await pilot.pause()


async def pictures_as_placeholders(pilot: Pilot[None]) -> None:
    """Show every card's picture as its placeholder box, for snapshots about layout.

    At 80x24 the snapshot caught the cards with or without their pictures, depending on when
    they arrived, and the half-cell colours of narrow cells varied slightly between runs: the
    narrow snapshots check the layout, the 120x40 ones and the real-terminal tests the pictures.
    """
    await placeholders_once_shown(pilot, pictures_shown)


async def placeholders_once_shown(
    pilot: Pilot[None], shown: Callable[[PixmartApp], bool]
) -> None:
    """Wait until ``shown(app)`` holds, then replace every picture with its placeholder box."""
    app = pilot.app
    assert isinstance(app, PixmartApp)
    # First every picture (a late one would replace its placeholder after the change).
    await until(pilot, lambda: shown(app), what="the pictures")
    # Cards redrawn after the narrow layout settles show their pictures again: repeat until
    # a pause passes with every placeholder still in place.
    for _ in range(40):
        for picture in app.screen.query(Picture):
            await picture.show(None, placeholder="picture")
        await pilot.pause(0.1)
        if all(picture.picture is None for picture in app.screen.query(Picture)):
            return
    raise AssertionError("the cards kept showing their pictures again")


def pictures_shown(app: PixmartApp) -> bool:
    """Whether every visible card shows its picture."""
    tiles = [tile for tile in app.screen.query(ItemTile) if tile.card is not None]
    return bool(tiles) and all(tile.query_one(Picture).picture is not None for tile in tiles)


async def in_gallery(pilot: Pilot[None], *, complete: bool = False) -> None:
    """Wait for the gallery's first batch; ``complete`` also waits for thumbnails and tags."""
    app = pilot.app
    assert isinstance(app, PixmartApp)
    await until(
        pilot,
        lambda: isinstance(app.screen, GalleryScreen) and bool(app.screen.query(CatalogueView)),
        what="the gallery",
    )
    view = app.screen.query_one(CatalogueView)
    await until(pilot, lambda: view.listing is not None and view.listing.batches > 0)
    if complete:
        await until(pilot, lambda: pictures_shown(app), what="the thumbnails")
        tags = app.screen.query_one("#tag-list", SelectionList)
        await until(pilot, lambda: tags.option_count > 0, what="the tags")
    # The "welcome back" toast would otherwise show through later modal screens.
    app.clear_notifications()


def test_login_screen(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """Log in to a known server: the header says connected with TLSv1.3 and ``6D:75:C1…``;
    the card has the server address, the remembered user name ``ada`` (focused) and an empty
    password; the footer offers ^n for a new account."""
    app = make_app(shop, tmp_path, logged_in=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.link.is_open, what="the connection")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen))
        await settle(pilot)

    assert snap(app, run_before)


def test_create_account_form(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """ctrl+n turns the login form into account creation: heading and buttons change and a
    "Repeat password" field appears; the password rule (8 characters) is stated."""
    app = make_app(shop, tmp_path, logged_in=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.link.is_open, what="the connection")
        await pilot.press("ctrl+n")
        await settle(pilot)

    assert snap(app, run_before)


def test_trust_dialog(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """First contact: a dialog names ``127.0.0.1:PORT`` and shows the full fingerprint on two
    lines, with "Don't trust" (focused) and "Trust and remember" buttons."""
    app = make_app(shop, tmp_path, logged_in=False, trust=TrustPolicy(known=None))

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: isinstance(app.screen, TrustDialog), what="the dialog")
        await settle(pilot)

    assert snap(app, run_before)


def test_fingerprint_changed_warning(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """A changed certificate: a red warning with the remembered fingerprint (AB:AB:…) and the
    presented one (6D:75:C1:…); the header says offline and nothing was sent."""
    store = ClientStore(tmp_path / "client")
    store.known_servers.pin(f"127.0.0.1:{shop.server.port}", ":".join(["AB"] * 32))
    app = make_app(shop, tmp_path, logged_in=False, trust=TrustPolicy(known=store.known_servers))

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: isinstance(app.screen, FingerprintChangedDialog))
        await settle(pilot)

    assert snap(app, run_before)


def test_gallery(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """The gallery as ada: tag sidebar with counts (landscape 6, warm 6, ...), 3×3 cards newest
    first with pictures, titles, prices in euros and stock ("sold out" on no. 11), the first
    card highlighted, and the status line "12 of 12 · end of the list"."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot, complete=True)
        await settle(pilot)

    assert snap(app, run_before)


def test_gallery_filtered_by_tag(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """Tag "sea" picked in the sidebar: three sea pictures, status "3 of 3 · tags: sea"."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot, complete=True)
        grid = app.screen.query_one(CatalogueView).grid
        await until(pilot, lambda: grid.columns == 3, what="three columns")
        await pilot.press("t")
        tags = app.screen.query_one("#tag-list", SelectionList)
        values = [tags.get_option_at_index(i).value for i in range(tags.option_count)]
        tags.highlighted = values.index("sea")
        await pilot.press("space")
        view = app.screen.query_one(CatalogueView)
        await until(pilot, lambda: view.listing is not None and view.listing.query.filters.tags)
        await until(pilot, lambda: view.listing is not None and view.listing.batches == 1)
        await until(pilot, lambda: pictures_shown(app), what="the thumbnails")
        await settle(pilot)

    assert snap(app, run_before)


#: The size many terminals open at.
SMALL = (80, 24)


async def test_gallery_at_80x24(shop: SnapshotShop, tmp_path: Path) -> None:
    """The gallery in an 80×24 terminal: the tag sidebar folded away, three cards across the
    whole width, "t" in the footer. (Checked on the widgets: a snapshot of it caught the cards
    with or without their pictures depending on when they arrived; the unfolded snapshot below
    shows the same layout.)"""
    app = make_app(shop, tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await in_gallery(pilot, complete=True)
        grid = app.screen.query_one(CatalogueView).grid
        # The narrow style lands after the first layout, the columns after the next one.
        await until(pilot, lambda: grid.columns == 3, what="three columns")
        assert app.screen.has_class("-narrow")
        assert not app.screen.query_one(TagSidebar).display
        assert "t" in app.screen.active_bindings


def test_gallery_tags_unfolded_at_80x24(
    snap: SnapCompare, shop: SnapshotShop, tmp_path: Path
) -> None:
    """The same after t: the tag list (landscape 6, warm 6, ...) lies over the left of the
    cards with the focus; the cards keep their three columns behind it."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot, complete=True)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.focused, SelectionList), what="the tag list")
        await pictures_as_placeholders(pilot)
        await settle(pilot)

    assert snap(app, run_before, size=SMALL)


def test_item_screen(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """Ada's newest item: the large preview on the left; title, price, stock, seller, tags,
    description and "96×64 PNG" on the right; quantity and Add to cart (disabled: a seller cannot
    buy her own item, and the footer leaves it out); Edit and Delete (hers); "Similar items"
    disabled (no image model)."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen))
        preview = app.screen.query_one("#item-preview", Picture)
        await until(pilot, lambda: preview.picture is not None, what="the preview")
        await settle(pilot)

    assert snap(app, run_before)


def test_edit_item_dialog(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """The owner's edit form over the item: title, price 35.25, stock, tags, a Public checkbox,
    the description, and Cancel/Save."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen))
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        await until(pilot, lambda: screen.detail is not None)
        preview = screen.query_one("#item-preview", Picture)
        await until(pilot, lambda: preview.picture is not None, what="the preview")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditItemDialog))
        await settle(pilot)

    assert snap(app, run_before)


def test_search_results(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """Search for "harbour": the form on top (words, tags, prices, in stock, sort) and two
    Harbour cards below, status "2 of 2 · “harbour”"."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        app.screen.query_one("#search-text", Input).value = "harbour"
        await pilot.press("enter")
        view = app.screen.query_one(CatalogueView)
        await until(pilot, lambda: view.listing is not None and view.listing.batches == 1)
        await until(pilot, lambda: pictures_shown(app), what="the thumbnails")
        await settle(pilot)

    assert snap(app, run_before)


def test_upload_screen(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """Upload with two pictures queued from the "to-sell" folder: the file tree on the left,
    the queue with names and sizes, the listing form, and the Upload button."""
    folder = tmp_path / "to-sell"
    folder.mkdir()
    for index in (201, 202):
        draw_picture(index).save(folder / f"print-{index}.png")
    app = make_app(shop, tmp_path, upload_root=folder)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot)
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UploadScreen))
        screen = app.screen
        assert isinstance(screen, UploadScreen)
        for path in sorted(folder.iterdir()):
            await screen.add(path)
        await settle(pilot)

    assert snap(app, run_before)


def test_my_items(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """My items: a table of ada's 12 listings (title, price, stock with "sold out" in red,
    visibility, tags), the second row selected (●), status "12 of 12 items · 1 selected"."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MyItemsScreen))
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 12, what="the rows")
        await pilot.press("down", "space")
        await settle(pilot)

    assert snap(app, run_before)


def test_help_screen(snap: SnapCompare, shop: SnapshotShop, tmp_path: Path) -> None:
    """? over the gallery lists the keys by section: Cards, Listing, This screen, Everywhere."""
    app = make_app(shop, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_gallery(pilot, complete=True)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await settle(pilot)

    assert snap(app, run_before)


# -- commerce: a second shop, so orders and the cart leave the catalogue above alone ----------

#: ``bea``'s items: title, price, stock. Orders take from the last two; the cart from the rest.
MARKET_ITEMS = [
    ("Lighthouse at dusk", 2400, 6),
    ("Harbour cranes", 1250, 4),
    ("Old market hall", 975, 5),
    ("Fog over the bay", 1800, 2),
    ("Night ferry", 3000, 3),
    ("Pier lanterns", 650, 10),
]
#: When ``cal``'s two orders were placed (UTC).
ORDER_TIMES = [
    calendar.timegm((2026, 11, 20, 14, 5, 0)),
    calendar.timegm((2026, 11, 23, 9, 30, 0)),
]


@dataclass
class Market:
    """The commerce snapshot server, with the saved sessions of its buyer and seller."""

    server: ThreadedServer
    buyer: SnapshotShop
    seller: SnapshotShop


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    """``bea`` sells six prints; ``cal`` bought twice (orders #1 and #2), then filled a cart
    that ``bea`` spoiled: a price raised, stock taken, an item deleted, one made private."""
    root = tmp_path_factory.mktemp("snapshot-market")
    server = _start_server(root)

    async def open_market() -> tuple[str, str]:
        bea, cal = await new_account(server, "bea"), await new_account(server, "cal")
        try:
            items = [
                SeedItem(index=40 + n, title=title, price_cents=price, stock=stock, tags=["print"])
                for n, (title, price, stock) in enumerate(MARKET_ITEMS)
            ]
            lighthouse, cranes, hall, fog, ferry, lanterns = [
                card.id for card in await seed(bea, items, root / "pictures")
            ]
            for lines in ([(lanterns, 2), (lighthouse, 1)], [(cranes, 1)]):
                for item_id, quantity in lines:
                    cart = await commerce_client.add_to_cart(cal, item_id, quantity)
                await commerce_client.checkout(
                    cal, cart.total_cents, commerce_client.new_checkout_key()
                )
            for item_id, quantity in [
                (lighthouse, 1),
                (cranes, 2),
                (hall, 3),
                (fog, 1),
                (ferry, 1),
            ]:
                await commerce_client.add_to_cart(cal, item_id, quantity)
            await edit_item(bea, cranes, price_cents=1400)
            await edit_item(bea, hall, stock=1)
            await delete_items(bea, [fog])
            await edit_item(bea, ferry, public=False)
            assert server.server is not None
            for order_id, when in enumerate(ORDER_TIMES, start=1):
                await server.server.db.execute(
                    "UPDATE orders SET created_at = ? WHERE id = ?", (when, order_id)
                )
            assert cal.token is not None and bea.token is not None
            return cal.token, bea.token
        finally:
            await bea.close()
            await cal.close()

    try:
        cal_token, bea_token = server.run(open_market())
        yield Market(
            server=server,
            buyer=SnapshotShop(server=server, token=cal_token),
            seller=SnapshotShop(server=server, token=bea_token),
        )
    finally:
        server.stop()


@pytest.fixture
def market_snap(
    snap_compare: SnapCompare, market: Market, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SnapCompare]:
    """``snap_compare`` for the market, with dates shown in UTC."""
    with dates_in_utc():
        yield comparer(snap_compare, market.server, monkeypatch)


async def in_shop_screen(pilot: Pilot[None], key: str, screen: type[Screen[Any]]) -> None:
    """Wait for the gallery, then press ``key`` and wait for ``screen``."""
    app = pilot.app
    await in_gallery(pilot)
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, screen), what=screen.__name__)


def test_cart(market_snap: SnapCompare, market: Market, tmp_path: Path) -> None:
    """The cart of cal: five lines, oldest first, with unit price, quantity, line total and
    stock. Flags in the Notes column: Harbour cranes "price was €12.50" (now €14.00, yellow),
    Old market hall "only 1 left" (3 wanted, red), Fog over the bay "deleted" and Night ferry
    "now private" (both struck through, stock "—"). The status line says "5 items · 8 units ·
    3 lines need attention…" and the total is €81.25 (the spoiled lines count nothing); the
    footer offers +- Quantity, x Remove, C Empty cart and b Check out."""
    app = make_app(market.buyer, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_shop_screen(pilot, "c", CartScreen)
        screen = app.screen
        assert isinstance(screen, CartScreen)
        await until(pilot, lambda: len(screen.row_ids) == 5, what="the lines")
        await settle(pilot)

    assert market_snap(app, run_before)


def test_orders(market_snap: SnapCompare, market: Market, tmp_path: Path) -> None:
    """My orders as cal, newest first: #2 of 2026-11-23 09:30 (1 item, 1 unit, "Harbour
    cranes", €12.50) and #1 of 2026-11-20 14:05 (2 items, 3 units, "Pier lanterns and 1 more",
    €37.00); the "My orders" tab active, status "2 orders" and "row 1 · end of the list"."""
    app = make_app(market.buyer, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_shop_screen(pilot, "o", OrdersScreen)
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        await until(pilot, lambda: screen.orders.table.row_count == 2, what="the orders")
        await settle(pilot)

    assert market_snap(app, run_before)


def test_order_dialog(market_snap: SnapCompare, market: Market, tmp_path: Path) -> None:
    """Enter on order #1: a dialog with its date, "2 items, 3 units · paid in EUR", the lines
    (Pier lanterns 2 × €6.50 = €13.00 and Lighthouse at dusk 1 × €24.00, both from bea) and
    "Total paid €37.00" over the orders list."""
    app = make_app(market.buyer, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_shop_screen(pilot, "o", OrdersScreen)
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        await until(pilot, lambda: screen.orders.table.row_count == 2, what="the orders")
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, OrderDialog), what="the order")
        await settle(pilot)

    assert market_snap(app, run_before)


def test_sales(market_snap: SnapCompare, market: Market, tmp_path: Path) -> None:
    """The Sales tab as bea (S): three lines sold to cal, newest first: Harbour cranes in #2,
    then Lighthouse at dusk and Pier lanterns (2 × €6.50) in #1; status "3 sales"."""
    app = make_app(market.seller, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await in_shop_screen(pilot, "o", OrdersScreen)
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        await pilot.press("S")
        await until(pilot, lambda: screen.sales.table.row_count == 3, what="the sales")
        await settle(pilot)

    assert market_snap(app, run_before)
