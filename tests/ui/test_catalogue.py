"""Provides Pilot tests of the catalogue screens against a real server seeded via the protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable, Input, SelectionList, Static

from protocol.catalogue_client import edit_item, get_item, iter_items
from protocol.errors import NotFound
from protocol.messages.catalogue import ListingFilters
from tests.conftest import SessionFactory, logged_in
from tests.ui.conftest import SIZE, AppFactory, Shop, open_gallery, type_text, until
from tests.ui.seed import draw_picture
from tui.app import PixmartApp
from tui.dialogs import ConfirmDialog, EditItemDialog
from tui.screens import GalleryScreen, ItemScreen, MyItemsScreen, SearchScreen, UploadScreen
from tui.store import ClientStore
from tui.widgets import CatalogueView, ItemTile

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


def gallery_view(app: PixmartApp) -> CatalogueView:
    return app.screen.query_one(CatalogueView)


def loaded_ids(view: CatalogueView) -> list[int]:
    assert view.listing is not None
    return [card.id for card in view.listing.items]


def tile_texts(app: PixmartApp) -> list[str]:
    """Title and price of every visible tile, as rendered."""
    texts = []
    for tile in app.screen.query(ItemTile):
        if tile.card is not None:
            title = str(tile.query_one("#title", Static).render())
            price = str(tile.query_one("#price", Static).render())
            texts.append(f"{title} {price}")
    return texts


async def test_browse_fetches_the_next_batch_only_at_the_end(
    make_shop: ShopFactory, make_app: AppFactory
) -> None:
    shop = await make_shop(14)
    app = make_app(listing_batch=6)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_gallery(pilot, app)
        await pilot.pause()
        assert len(loaded_ids(view)) == 6  # nothing fetched before the end is reached
        newest_first = [card.id for card in reversed(shop.cards)]
        assert loaded_ids(view) == newest_first[:6]
        status = str(view.query_one("#listing-status", Static).render())
        assert status.startswith("6 of 14")
        assert tile_texts(app)[0] == "Glacier no. 14 €40.75"  # newest first, price shown
        await pilot.press("j")  # onto the last loaded row
        await until(pilot, lambda: len(loaded_ids(view)) == 12, what="the second batch")
        await pilot.press("end", "j")
        await until(pilot, lambda: len(loaded_ids(view)) == 14, what="the last batch")
        assert loaded_ids(view) == newest_first
        assert view.listing is not None and view.listing.exhausted


async def test_tags_filter_the_gallery(make_shop: ShopFactory, make_app: AppFactory) -> None:
    await make_shop(8)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_gallery(pilot, app)
        tags = app.screen.query_one("#tag-list", SelectionList)
        await until(pilot, lambda: tags.option_count > 0, what="the tag list")
        await pilot.press("t")
        assert app.focused is tags
        sea = next(
            i for i in range(tags.option_count) if tags.get_option_at_index(i).value == "sea"
        )
        tags.highlighted = sea
        await pilot.press("space")
        await until(
            pilot, lambda: view.listing is not None and view.listing.query.filters.tags == ["sea"]
        )
        await until(pilot, lambda: view.listing is not None and view.listing.batches >= 1)
        assert view.listing is not None
        assert len(view.listing.items) == 2
        assert all("sea" in card.tags for card in view.listing.items)
        status = str(view.query_one("#listing-status", Static).render())
        assert "2 of 2" in status and "tags: sea" in status


async def test_text_search_shows_matching_cards(
    make_shop: ShopFactory, make_app: AppFactory
) -> None:
    await make_shop(16)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), what="the search")
        # The screen puts the focus in the query once mounted, a moment after it shows.
        await until(
            pilot,
            lambda: app.focused is app.screen.query_one("#search-text", Input),
            what="the focus in the query",
        )
        await type_text(pilot, "harbour")
        await pilot.press("enter")
        view = app.screen.query_one(CatalogueView)
        await until(pilot, lambda: view.listing is not None and view.listing.batches >= 1)
        assert view.listing is not None
        titles = [card.title for card in view.listing.items]
        assert titles and all("Harbour" in title for title in titles)
        assert sorted(titles) == ["Harbour no. 10", "Harbour no. 2"]
        # Refining with "in stock" searches again; every result has stock.
        app.screen.query_one("#search-in-stock", Checkbox).value = True
        await until(pilot, lambda: view.listing is not None and view.listing.query.filters.in_stock)
        await until(pilot, lambda: view.listing is not None and view.listing.batches >= 1)
        assert all(card.stock > 0 for card in view.listing.items)


async def test_open_edit_and_delete_an_own_item(
    make_shop: ShopFactory, make_app: AppFactory
) -> None:
    shop = await make_shop(3)
    newest = shop.cards[-1]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_gallery(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        screen = app.screen
        assert isinstance(screen, ItemScreen) and screen.item_id == newest.id
        await until(pilot, lambda: screen.detail is not None, what="the details")
        assert "A generated picture" in str(screen.query_one("#item-description", Static).render())
        # Edit the price and the title in the form.
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditItemDialog), what="the form")
        form = app.screen
        form.query_one("#edit-price", Input).value = "99.50"
        form.query_one("#edit-title", Input).value = "Renamed"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen.detail is not None and screen.detail.price_cents == 9950)
        assert str(screen.query_one("#item-price", Static).render()) == "€99.50"
        stored = await get_item(shop.seller, newest.id)
        assert (stored.title, stored.price_cents) == ("Renamed", 9950)
        # The gallery behind heard about it too (live update).
        await until(
            pilot, lambda: view.listing is not None and view.listing.items[0].title == "Renamed"
        )
        # Delete with a confirmation.
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
        await pilot.press("y")
        await until(
            pilot, lambda: isinstance(app.screen, GalleryScreen), what="back in the gallery"
        )
        await until(pilot, lambda: newest.id not in loaded_ids(view), what="the card to go")
        try:
            await get_item(shop.seller, newest.id)
        except NotFound:
            pass
        else:
            raise AssertionError("the item still exists")


async def test_others_cannot_edit_and_see_price_changes_live(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(2)
    buyer = await logged_in(make_session, "buyer")
    assert buyer.token is not None
    ui_store.save_token(shop.url, buyer.token)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_gallery(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen))
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        await until(pilot, lambda: screen.detail is not None)
        assert not screen.mine and not screen.query_one("#item-owner").display
        await edit_item(shop.seller, screen.item_id, price_cents=123, stock=0)
        await until(pilot, lambda: str(screen.query_one("#item-price", Static).render()) == "€1.23")
        assert "sold out" in str(screen.query_one("#item-stock", Static).render())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen))
        assert any("€1.23" in text for text in tile_texts(app))
        assert view.listing is not None and view.listing.items[0].stock == 0


async def test_upload_pictures_with_progress_and_summary(
    make_shop: ShopFactory, make_app: AppFactory, tmp_path: Path
) -> None:
    shop = await make_shop(1)
    folder = tmp_path / "to-sell"
    folder.mkdir()
    for index in (101, 102):
        draw_picture(index).save(folder / f"beach_walk-{index}.png")
    (folder / "notes.txt").write_text("not a picture")
    app = make_app(upload_root=folder)
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UploadScreen), what="the upload screen")
        screen = app.screen
        assert isinstance(screen, UploadScreen)
        path_field = screen.query_one("#upload-path", Input)
        path_field.focus()
        path_field.value = str(folder)  # typed key by key, a long path is slow to test
        await pilot.press("enter")
        await until(pilot, lambda: len(screen.queue) == 2, what="two queued pictures")
        screen.query_one("#upload-price", Input).value = "7.25"
        screen.query_one("#upload-tags", Input).value = "beach, print"
        await pilot.press("ctrl+s")
        summary = screen.query_one("#upload-summary", Static)
        await until(pilot, lambda: "2 listed" in str(summary.render()), what="the summary")
        statuses = [str(row.query_one(".status", Static).render()) for row in screen.queue.values()]
        assert all(status.startswith("listed as #") for status in statuses)
    titles = sorted(
        [card.title async for card in iter_items(shop.seller, ListingFilters(mine=True))]
    )
    assert titles == ["Beach walk 101", "Beach walk 102", "Sunset no. 1"]


async def test_my_items_bulk_delete(make_shop: ShopFactory, make_app: AppFactory) -> None:
    shop = await make_shop(5)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MyItemsScreen), what="my items")
        screen = app.screen
        assert isinstance(screen, MyItemsScreen)
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 5, what="five rows")
        await pilot.press("space", "space")  # selects the first two, moving down
        assert len(screen.selected) == 2
        doomed = set(screen.selected)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 3, what="two rows to go")
    left = {card.id async for card in iter_items(shop.seller, ListingFilters(mine=True))}
    assert left == {card.id for card in shop.cards} - doomed


async def test_a_drop_mid_browse_ends_with_the_same_list_and_no_duplicates(
    make_shop: ShopFactory, make_app: AppFactory
) -> None:
    shop = await make_shop(14)
    app = make_app(listing_batch=5)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_gallery(pilot, app)
        session = app.link.session
        assert session is not None
        session.abort_transport()
        await pilot.press("n")  # asked while the link is down: the request waits, then goes
        await until(pilot, lambda: len(loaded_ids(view)) == 10, what="the second batch")
        session.abort_transport()
        await pilot.press("n")
        await until(pilot, lambda: len(loaded_ids(view)) == 14, what="the rest")
        ids = loaded_ids(view)
        assert len(ids) == len(set(ids)) == 14
        assert ids == [card.id for card in reversed(shop.cards)]
        assert app.connection is not None and app.connection.state.value == "connected"
