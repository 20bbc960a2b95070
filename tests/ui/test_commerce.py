"""Provides Pilot tests of the cart and orders screens against a real server, seeded by protocol.

The buyer's cart and orders are the server's: each test checks what the screens show against what
the server holds, and changes made elsewhere (the seller, the buyer's other device) are seen live.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rich.text import Text
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual.widgets._toast import Toast

from protocol import commerce_client
from protocol.catalogue_client import delete_items, edit_item, get_item
from protocol.client import Offline, Session
from protocol.messages.commerce import Cart, CartLine, LineProblem
from tests.conftest import SessionFactory, logged_in
from tests.ui.conftest import SIZE, AppFactory, Shop, until
from tui.app import PixmartApp
from tui.data.commerce import blocking_failures, failure_words, line_notes, shown_total
from tui.dialogs import ConfirmDialog, OrderDialog, QuantityDialog, parse_quantity
from tui.screens import CartScreen, GalleryScreen, ItemScreen, OrdersScreen
from tui.store import ClientStore
from tui.widgets import BatchTable, CatalogueView

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


async def as_buyer(
    make_session: SessionFactory, ui_store: ClientStore, shop: Shop, name: str = "buyer"
) -> Session:
    """A fresh buyer whose saved session the app resumes."""
    buyer = await logged_in(make_session, name)
    assert buyer.token is not None
    ui_store.save_token(shop.url, buyer.token)
    return buyer


def toasts(app: PixmartApp) -> str:
    """Every notification on screen, as one text."""
    return "\n".join(str(toast.render()) for toast in app.screen.query(Toast))


def text_of(value: object) -> str:
    """The plain text of a table cell."""
    if isinstance(value, Text | Content):
        return value.plain
    return str(value)


def cart_cells(app: PixmartApp, column: str) -> list[str]:
    """One column of the cart table, top to bottom."""
    screen = app.screen
    assert isinstance(screen, CartScreen)
    table = screen.table
    return [text_of(table.get_cell(str(item_id), column)) for item_id in screen.row_ids]


def cart_total(app: PixmartApp) -> str:
    return str(app.screen.query_one("#cart-total", Static).render())


def header_cart(app: PixmartApp) -> str:
    return str(app.screen.query_one("#cart", Static).render())


async def open_cart(pilot: Pilot[None], app: PixmartApp, rows: int) -> CartScreen:
    """Log in (resumed), press ``c`` and wait for ``rows`` lines."""
    await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, CartScreen), what="the cart")
    screen = app.screen
    assert isinstance(screen, CartScreen)
    await until(pilot, lambda: len(screen.row_ids) == rows, what=f"{rows} cart lines")
    return screen


def server_quantities(app: PixmartApp) -> dict[int, int]:
    cart = app.cart.cart
    assert cart is not None
    return {line.item_id: line.quantity for line in cart.lines}


async def test_buy_from_the_item_screen_through_the_cart_to_the_orders(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(3)
    newest = shop.cards[-1]  # "Forest no. 3", €10.50, 3 in stock
    buyer = await as_buyer(make_session, ui_store, shop)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        # No orders yet: the orders screen says so (and hears of the one placed below).
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), what="the orders")
        orders = app.screen
        assert isinstance(orders, OrdersScreen)
        await until(pilot, lambda: orders.orders.has_class("-empty"), what="no orders")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        view = app.screen.query_one(CatalogueView)
        await until(pilot, lambda: view.listing is not None and view.listing.batches >= 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        item = app.screen
        assert isinstance(item, ItemScreen) and item.item_id == newest.id
        await until(pilot, lambda: item.detail is not None, what="the details")
        await pilot.press("a")
        await until(pilot, lambda: app.cart_count == 1, what="the cart count")
        assert header_cart(app) == "cart 1"

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CartScreen), what="the cart")
        cart = app.screen
        assert isinstance(cart, CartScreen)
        await until(pilot, lambda: cart.row_ids == [newest.id], what="the line")
        assert cart_cells(app, "title") == ["Forest no. 3"]
        assert cart_cells(app, "price") == ["€10.50"]
        await pilot.press("plus")
        await until(pilot, lambda: server_quantities(app) == {newest.id: 2}, what="2 units")
        assert cart_cells(app, "quantity") == ["2"]
        assert cart_cells(app, "total") == ["€21.00"]
        assert cart_total(app) == "Total €21.00"
        assert header_cart(app) == "cart 2"

        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert dialog.question == "Buy 1 item (2 units) for €21.00?"
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, OrderDialog), what="the order")
        placed = app.screen
        assert isinstance(placed, OrderDialog) and placed.placed
        assert [(line.item_id, line.quantity) for line in placed.order.lines] == [(newest.id, 2)]
        assert placed.order.total_cents == 2100
        await until(pilot, lambda: app.cart_count == 0, what="an empty cart")

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CartScreen))
        assert cart.has_class("-empty")
        await pilot.press("o")
        await until(pilot, lambda: app.screen is orders, what="the orders")
        assert orders.orders.table.row_count == 1 and not orders.orders.has_class("-empty")
        row = [text_of(cell) for cell in orders.orders.table.get_row_at(0)]
        assert row[1:] == [f"#{placed.order.id}", "1", "2", "Forest no. 3", "€21.00"]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, OrderDialog), what="the order lines")
        shown = app.screen
        assert isinstance(shown, OrderDialog) and not shown.placed
        assert shown.order.id == placed.order.id

    listed = [order.id async for order in commerce_client.iter_orders(buyer)]
    assert listed == [placed.order.id]
    assert (await get_item(shop.seller, newest.id)).stock == 1


async def test_type_a_quantity_remove_a_line_and_empty_the_cart(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(5)
    meadow, forest = shop.cards[4], shop.cards[2]  # 5 and 3 in stock
    buyer = await as_buyer(make_session, ui_store, shop)
    await commerce_client.add_to_cart(buyer, meadow.id, 1)
    await commerce_client.add_to_cart(buyer, forest.id, 1)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        cart = await open_cart(pilot, app, rows=2)
        assert cart.row_ids == [meadow.id, forest.id]  # oldest line first
        assert header_cart(app) == "cart 2"
        # A digit on a line starts typing its quantity.
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, QuantityDialog), what="the dialog")
        assert app.screen.query_one(Input).value == "4"
        await pilot.press("enter")
        await until(pilot, lambda: server_quantities(app)[meadow.id] == 4, what="4 units")
        assert header_cart(app) == "cart 5"
        # More than the stock is refused in the dialog, in words.
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, QuantityDialog))
        await pilot.press("9", "enter")
        error = app.screen.query_one("#quantity-error", Static)
        await until(pilot, lambda: str(error.render()) == "Only 5 left", what="the refusal")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CartScreen))
        assert server_quantities(app)[meadow.id] == 4
        # One fewer, then take the line out.
        await pilot.press("minus")
        await until(pilot, lambda: server_quantities(app)[meadow.id] == 3, what="3 units")
        await pilot.press("x")
        await until(pilot, lambda: cart.row_ids == [forest.id], what="the line to go")
        assert header_cart(app) == "cart 1"
        # Empty the cart, after a confirmation.
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: cart.has_class("-empty"), what="the empty cart")
        assert app.cart_count == 0
    assert (await commerce_client.get_cart(buyer)).lines == []


async def test_the_seller_and_another_device_change_an_open_cart_live(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cart_fetches: list[Cart] = []
    real_get_cart = commerce_client.get_cart

    async def counted_get_cart(session: Session) -> Cart:
        cart = await real_get_cart(session)
        cart_fetches.append(cart)
        return cart

    monkeypatch.setattr(commerce_client, "get_cart", counted_get_cart)
    shop = await make_shop(5)
    sunset, harbour, forest, meadow = (shop.cards[i] for i in (0, 1, 2, 4))
    buyer = await as_buyer(make_session, ui_store, shop)
    await commerce_client.add_to_cart(buyer, meadow.id, 3)  # €16.00, 5 in stock
    await commerce_client.add_to_cart(buyer, forest.id, 1)  # €10.50
    await commerce_client.add_to_cart(buyer, harbour.id, 1)  # €7.75
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_cart(pilot, app, rows=3)
        assert cart_cells(app, "notes") == ["", "", ""]
        assert cart_total(app) == "Total €66.25"

        await edit_item(shop.seller, meadow.id, stock=1)
        await until(pilot, lambda: cart_cells(app, "notes")[0] == "only 1 left", what="the flag")
        assert cart_cells(app, "stock")[0] == "1 left"
        await edit_item(shop.seller, forest.id, price_cents=999)
        await until(pilot, lambda: cart_cells(app, "notes")[1] == "price was €10.50")
        assert cart_cells(app, "price")[1] == "€9.99"
        assert cart_total(app) == "Total €65.74"
        await delete_items(shop.seller, [harbour.id])
        await until(pilot, lambda: cart_cells(app, "notes")[2] == "deleted", what="deleted")
        assert cart_total(app) == "Total €57.99"  # a deleted line counts nothing
        status = str(app.screen.query_one("#cart-status", Static).render())
        assert "2 lines need attention" in status

        # The buyer's phone adds an item: the cart and the header follow.
        phone = await make_session(token=buyer.token)
        await commerce_client.add_to_cart(phone, sunset.id, 1)
        await until(pilot, lambda: len(cart_cells(app, "title")) == 4, what="the new line")
        assert cart_cells(app, "title")[3] == "Sunset no. 1"
        assert header_cart(app) == "cart 6"

        # After a drop the server has forgotten what the link watched: the cart is asked for
        # again, so the other device is still heard.
        fetched = len(cart_fetches)
        session = app.link.session
        assert session is not None
        session.abort_transport()
        await until(pilot, lambda: len(cart_fetches) > fetched, what="the cart after the drop")
        await commerce_client.set_quantity(phone, forest.id, 2)
        await until(pilot, lambda: cart_cells(app, "quantity")[1] == "2", what="live again")
        assert header_cart(app) == "cart 7"


async def test_a_checkout_that_fails_says_which_lines_and_why(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(5)
    meadow = shop.cards[4]
    buyer = await as_buyer(make_session, ui_store, shop)
    await commerce_client.add_to_cart(buyer, meadow.id, 2)
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_cart(pilot, app, rows=1)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        # While the person reads the question, the seller sells the rest elsewhere.
        await edit_item(shop.seller, meadow.id, stock=1)
        cart = app.cart
        await until(
            pilot,
            lambda: (
                cart.cart is not None and LineProblem.OUT_OF_STOCK in cart.cart.lines[0].problems
            ),
            what="the cart to hear of it",
        )
        await pilot.press("y")
        await until(pilot, lambda: "Nothing was bought" in toasts(app), what="the refusal")
        text = toasts(app)
        assert "only 1 of 'Meadow no. 5' left (you want 2)" in text
        assert "Traceback" not in text and "out_of_stock" not in text
        assert isinstance(app.screen, CartScreen)
        assert cart_cells(app, "notes") == ["only 1 left"]
        # The next try is stopped before the question, with the same words.
        app.clear_notifications()
        await pilot.press("b")
        await until(pilot, lambda: "Change or remove these lines first" in toasts(app))
        assert "only 1 of 'Meadow no. 5' left (you want 2)" in toasts(app)
        assert isinstance(app.screen, CartScreen)
    assert [order async for order in commerce_client.iter_orders(buyer)] == []
    assert not (ui_store.root / "checkout-keys").exists() or not any(
        (ui_store.root / "checkout-keys").iterdir()
    )


async def test_a_checkout_retried_after_a_lost_answer_reuses_its_key(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await make_shop(5)
    buyer = await as_buyer(make_session, ui_store, shop)
    await commerce_client.add_to_cart(buyer, shop.cards[4].id, 1)
    keys: list[str] = []
    real_checkout = commerce_client.checkout

    async def flaky_checkout(session: Session, **kwargs: Any) -> Any:
        keys.append(kwargs["checkout_key"])
        if len(keys) == 1:
            raise Offline("The connection was lost")  # the answer never came
        return await real_checkout(session, **kwargs)

    monkeypatch.setattr(commerce_client, "checkout", flaky_checkout)
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_cart(pilot, app, rows=1)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: "Checkout not confirmed" in toasts(app), what="the doubt")
        assert "without buying twice" in toasts(app)
        assert any((ui_store.root / "checkout-keys").iterdir())  # kept for the retry
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, OrderDialog), what="the order")
        assert keys[0] == keys[1]
        assert not any((ui_store.root / "checkout-keys").iterdir())  # settled
        await pilot.press("escape")
        # The next purchase gets a key of its own.
        await commerce_client.add_to_cart(buyer, shop.cards[2].id, 1)
        await until(pilot, lambda: app.cart_count == 1, what="the other device's line")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: len(keys) == 3 and isinstance(app.screen, OrderDialog))
        assert keys[2] != keys[0]
    assert len([order async for order in commerce_client.iter_orders(buyer)]) == 2


async def test_orders_come_in_batches(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    make_app: AppFactory,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(5)
    meadow = shop.cards[4]  # 5 in stock
    buyer = await as_buyer(make_session, ui_store, shop)
    placed = []
    for _ in range(5):
        await commerce_client.add_to_cart(buyer, meadow.id, 1)
        order = await commerce_client.checkout(buyer, 1600, commerce_client.new_checkout_key())
        placed.append(order.order.id)
    app = make_app(listing_batch=2)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), what="the orders")
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        orders: BatchTable[Any] = screen.orders
        await until(pilot, lambda: orders.table.row_count == 2, what="the first batch")
        await pilot.pause()
        assert orders.table.row_count == 2  # nothing more until asked
        await pilot.press("n")
        await until(pilot, lambda: orders.table.row_count == 4, what="the second batch")
        await pilot.press("down", "down")  # near the last row: the rest comes
        await until(pilot, lambda: orders.table.row_count == 5, what="the last batch")
        assert orders.batches is not None and orders.batches.exhausted
        assert [summary.id for summary in orders.batches.items] == placed[::-1]
        # The buyer sold nothing.
        await pilot.press("S")
        await until(pilot, lambda: screen.sales.has_class("-empty"), what="no sales")
        assert screen.title == "Sales"


# -- the pure parts ---------------------------------------------------------------------------


def line(item_id: int, *problems: LineProblem, **changes: Any) -> CartLine:
    fields: dict[str, Any] = {
        "item_id": item_id,
        "title": f"Print {item_id}",
        "quantity": 2,
        "price_cents": 500,
        "added_price_cents": 500,
        "stock": 4,
        "line_total_cents": 1000,
        "problems": list(problems),
    }
    fields.update(changes)
    return CartLine(**fields)


def test_cart_lines_are_flagged_in_a_few_words() -> None:
    def notes(cart_line: CartLine) -> list[tuple[str, bool]]:
        return [(note.text, note.blocking) for note in line_notes(cart_line, "EUR")]

    assert notes(line(1)) == []
    assert notes(line(2, LineProblem.DELETED, stock=0)) == [("deleted", True)]
    assert notes(line(3, LineProblem.PRIVATE, stock=0)) == [("now private", True)]
    assert notes(line(4, LineProblem.OUT_OF_STOCK, stock=1)) == [("only 1 left", True)]
    assert notes(line(5, LineProblem.OUT_OF_STOCK, stock=0)) == [("sold out", True)]
    changed = line(6, LineProblem.PRICE_CHANGED, LineProblem.OUT_OF_STOCK, stock=1, price_cents=650)
    assert notes(changed) == [("only 1 left", True), ("price was €5.00", False)]


def test_blocking_lines_are_named_as_the_server_would() -> None:
    cart = Cart(
        lines=[
            line(1),
            line(2, LineProblem.PRICE_CHANGED, price_cents=700),
            line(3, LineProblem.OUT_OF_STOCK, stock=1),
            line(4, LineProblem.DELETED, stock=0),
        ]
    )
    failures = blocking_failures(cart)
    assert [failure.item_id for failure in failures] == [3, 4]
    assert failure_words(failures, "EUR") == [
        "only 1 of 'Print 3' left (you want 2)",
        "'Print 4' was deleted by its seller",
    ]
    # Deleted and private lines count nothing; quantities on their way count as shown.
    assert shown_total(cart, lambda cart_line: 3 if cart_line.item_id == 1 else 2) == 3900


def test_quantities_are_read_strictly() -> None:
    assert parse_quantity(" 3 ", stock=5) == 3
    assert parse_quantity("1,000") == 1000
    for text, stock, words in [
        ("", None, "whole number"),
        ("2.5", None, "whole number"),
        ("0", None, "At least 1"),
        ("6", 5, "Only 5 left"),
        ("1", 0, "sold out"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_quantity(text, stock)
