"""Provides Pilot tests of favourites and the inbox against a real server, seeded by protocol.

A buyer keeps items with ``f`` on a card or an item page, sees them on the favourites screen
(``F``), and hears in the header's inbox count, live, when the seller makes one cheaper; the
inbox screen (``i``) lists the notice, opens its item, marks notices read and clears them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.coordinate import Coordinate
from textual.widgets import Static

from protocol import favourites_client, inbox_client
from protocol.catalogue_client import delete_items, edit_item
from protocol.client import Session
from tests.conftest import SessionFactory, logged_in
from tests.ui.conftest import SIZE, AppFactory, Shop, open_gallery, until
from tests.ui.test_commerce import as_buyer, text_of
from tui.app import PixmartApp
from tui.dialogs import ConfirmDialog
from tui.screens import FavouritesScreen, GalleryScreen, InboxScreen, ItemScreen
from tui.store import ClientStore
from tui.widgets import CatalogueView, ItemTile

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


def notified(app: PixmartApp) -> str:
    """Every notification not yet expired, as one text (whether or not its toast is drawn yet:
    a screen shows toasts only once it has been refreshed)."""
    return "\n".join(notification.message for notification in app._notifications)


def header_inbox(app: PixmartApp) -> str:
    return str(app.screen.query_one("#inbox", Static).render())


async def test_keep_a_card_and_an_item_and_see_them_on_the_favourites_screen(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(3)
    buyer = await as_buyer(make_session, ui_store, shop)
    newest, middle = shop.cards[-1], shop.cards[-2]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await pilot.press("f")  # the highlighted card: the newest
        await until(pilot, lambda: app.favourites.holds(newest.id), what="the first favourite")
        await until(pilot, lambda: "is a favourite (1 kept)" in notified(app), what="the toast")
        tile = next(t for t in app.screen.query(ItemTile) if t.card and t.card.id == newest.id)
        await until(pilot, lambda: tile.border_title == "♥", what="the card's mark")
        await pilot.press("right", "enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        await pilot.press("f")
        await until(pilot, lambda: app.favourites.holds(middle.id), what="the second favourite")
        assert sorted(await favourites_client.favourite_ids(buyer)) == sorted(
            [newest.id, middle.id]
        )
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")

        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FavouritesScreen), what="favourites")
        view = app.screen.query_one(CatalogueView)
        await until(pilot, lambda: view.listing is not None and len(view.listing) == 2)
        assert view.listing is not None
        assert [card.id for card in view.listing.items] == [middle.id, newest.id]

        # Deleted by its seller: still listed, saying so, and f drops it.
        await delete_items(shop.seller, [middle.id])
        await pilot.press("g")
        await pilot.press("F")
        await until(
            pilot,
            lambda: (
                view.listing is not None and view.listing.items[0].title.startswith("(deleted)")
            ),
            what="the deleted favourite",
        )
        await pilot.press("enter")
        await until(pilot, lambda: "deleted this item" in notified(app), what="the explanation")
        assert isinstance(app.screen, FavouritesScreen)
        await pilot.press("f")
        await until(pilot, lambda: not app.favourites.holds(middle.id), what="the drop")
        await until(
            pilot,
            lambda: view.listing is not None and [c.id for c in view.listing.items] == [newest.id],
            what="the favourites without it",
        )


async def test_a_price_drop_reaches_the_header_and_the_inbox_live(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(2)
    buyer = await as_buyer(make_session, ui_store, shop)
    item = shop.cards[-1]
    await favourites_client.add_favourite(buyer, item.id)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await until(pilot, lambda: app.inbox.following, what="the inbox count")
        assert header_inbox(app) == "inbox 0"

        await edit_item(shop.seller, item.id, price_cents=item.price_cents - 100)
        await until(pilot, lambda: header_inbox(app) == "inbox 1", what="the live count")
        assert "now costs" in notified(app)

        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="the inbox")
        screen = app.screen
        assert isinstance(screen, InboxScreen)
        table = screen.notices
        await until(pilot, lambda: table.table.row_count == 1, what="the notice")
        notice = table.current
        assert notice is not None and notice.item_id == item.id and not notice.read
        assert text_of(table.table.get_cell_at(Coordinate(0, 0))) == "●"

        # Another notice arrives while the inbox is on screen: it shows at the top.
        await edit_item(shop.seller, item.id, price_cents=item.price_cents - 200)
        await until(pilot, lambda: table.table.row_count == 2, what="the new notice")
        await until(pilot, lambda: header_inbox(app) == "inbox 2", what="two unread")

        await pilot.press("space")  # the highlighted (newest) one read
        await until(pilot, lambda: header_inbox(app) == "inbox 1", what="one read")
        assert text_of(table.table.get_cell_at(Coordinate(0, 0))) == ""
        await pilot.press("down", "enter")  # opens the item and reads the notice
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        assert app.screen.item_id == item.id  # type: ignore[attr-defined]
        await until(pilot, lambda: header_inbox(app) == "inbox 0", what="all read")
        assert await inbox_client.unread_count(buyer) == 0

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="the inbox again")
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: table.has_class("-empty"), what="an empty inbox")
        assert (await inbox_client.inbox_batch(buyer)).notices == []


async def test_reads_on_another_device_reach_the_header(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(1)
    buyer = await as_buyer(make_session, ui_store, shop)
    item = shop.cards[-1]
    await favourites_client.add_favourite(buyer, item.id)
    await edit_item(shop.seller, item.id, price_cents=item.price_cents - 100)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await until(pilot, lambda: header_inbox(app) == "inbox 1", what="the unread count")
        phone: Session = await make_session(token=buyer.token)
        await inbox_client.mark_all_read(phone)
        await until(pilot, lambda: header_inbox(app) == "inbox 0", what="read elsewhere")


async def test_a_private_item_cannot_be_kept(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(1)
    await as_buyer(make_session, ui_store, shop)
    other = await logged_in(make_session, "other")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        card = shop.cards[-1]
        await edit_item(shop.seller, card.id, public=False)
        app.favourites.toggle(card.id, card.title)
        await until(pilot, lambda: f"no item {card.id}" in notified(app), what="the refusal")
        assert not app.favourites.holds(card.id)
        assert await favourites_client.favourite_ids(other) == []
