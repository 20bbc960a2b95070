"""Widgets on their own: each mounted in :class:`~tests.ui.harness.HarnessApp`, a small app that
satisfies the shop context, with no server and no other screen (the card grid, the look-alike
strip, the cart table and the upload queue)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.content import Content
from textual.widgets import Static

from protocol.messages.commerce import Cart, CartChanged, CartLine, LineProblem
from tests.ui.harness import HarnessApp, as_context, card
from tui.widgets.card_grid import CardGrid, ItemTile
from tui.widgets.cart_table import COLUMNS, CartTable
from tui.widgets.similar_strip import SimilarStrip
from tui.widgets.upload_queue import UploadQueue

SIZE = (80, 24)


def tiles(app: HarnessApp) -> list[str]:
    """Title and price of every tile showing an item, as rendered."""
    shown = []
    for tile in app.query(ItemTile):
        if tile.card is not None:
            title = str(tile.query_one("#title", Static).render())
            price = str(tile.query_one("#price", Static).render())
            shown.append(f"{title} {price}")
    return shown


def plain(value: object) -> str:
    return value.plain if isinstance(value, Text | Content) else str(value)


# -- the card grid ---------------------------------------------------------------------------


async def test_the_card_grid_shows_moves_and_opens_cards(tmp_path: Path) -> None:
    app = HarnessApp(lambda: CardGrid(currency="USD", id="cards"), root=tmp_path)
    cards = [card(i) for i in range(1, 6)]
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(CardGrid)
        grid.focus()
        await grid.set_items(cards, reset=True)
        await pilot.pause()
        assert grid.columns >= 2  # at least two cards across 80 columns
        assert tiles(app)[:2] == ["Item 1 $1.50", "Item 2 $2.50"]
        assert grid.current == cards[0]
        await pilot.press("right")
        assert grid.current == cards[1]
        await pilot.press("end")
        assert grid.current == cards[-1]
        await pilot.press("enter")
        await pilot.pause()
    assert app.opened == [cards[-1]]


async def test_the_look_alike_strip_uses_the_apps_currency_and_hides_when_empty(
    tmp_path: Path,
) -> None:
    app = HarnessApp(SimilarStrip, root=tmp_path, currency="GBP")
    async with app.run_test(size=SIZE) as pilot:
        strip = app.query_one(SimilarStrip)
        await strip.show_items([card(1, score=0.93), card(2, score=0.5)])
        await pilot.pause()
        assert strip.display and strip.has_class("-shown")
        assert tiles(app)[0].startswith("Item 1 £1.50")
        await strip.show_items([])
        await pilot.pause()
        assert not strip.has_class("-shown")


# -- the cart table --------------------------------------------------------------------------


def line(item_id: int, **changes: object) -> CartLine:
    fields: dict[str, object] = {
        "item_id": item_id,
        "title": f"Item {item_id}",
        "quantity": 1,
        "price_cents": 1000 * item_id,
        "added_price_cents": 1000 * item_id,
        "stock": 5,
        "line_total_cents": 1000 * item_id,
    }
    fields.update(changes)
    return CartLine(**fields)  # type: ignore[arg-type]


def cart_of(*lines: CartLine) -> Cart:
    return Cart(lines=list(lines), units=sum(line.quantity for line in lines))


def column(table: CartTable, key: str) -> list[str]:
    return [plain(table.get_cell(str(item_id), key)) for item_id in table.row_ids]


async def test_the_cart_table_shows_lines_with_their_flags(tmp_path: Path) -> None:
    app = HarnessApp(lambda: CartTable(id="cart-table"), root=tmp_path, currency="EUR")
    cart = cart_of(
        line(1, quantity=2, line_total_cents=2000),
        line(2, price_cents=1500, problems=[LineProblem.PRICE_CHANGED]),
        line(3, stock=1, quantity=2, problems=[LineProblem.OUT_OF_STOCK]),
        line(4, stock=0, problems=[LineProblem.DELETED]),
    )
    async with app.run_test(size=(120, 24)) as pilot:
        table = app.query_one(CartTable)
        assert [c.key for c in COLUMNS] == [str(c.value) for c in table.columns]
        app.cart.on_event(CartChanged(cart=cart))  # as the server tells it
        assert app.cart.cart == cart
        table.show(cart)
        await pilot.pause()
        assert table.row_ids == [1, 2, 3, 4]
        assert column(table, "price") == ["€10.00", "€15.00", "€30.00", "€40.00"]
        assert column(table, "quantity") == ["2", "1", "2", "1"]
        assert column(table, "total") == ["€20.00", "€15.00", "€60.00", "€40.00"]
        assert column(table, "stock")[3] == "—"  # gone: no stock to speak of
        assert column(table, "notes") == ["", "price was €20.00", "only 1 left", "deleted"]


async def test_the_cart_table_keeps_the_cursor_on_its_line_and_updates_in_place(
    tmp_path: Path,
) -> None:
    app = HarnessApp(lambda: CartTable(id="cart-table"), root=tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        table = app.query_one(CartTable)
        table.show(cart_of(line(1), line(2), line(3)))
        table.focus()
        await pilot.press("down", "down")
        assert table.current_item() == 3
        # Another device took line 1 out: the cursor stays on item 3.
        table.show(cart_of(line(2), line(3)))
        await pilot.pause()
        assert table.row_ids == [2, 3] and table.current_item() == 3
        # The same lines with a new price change the cells, not the rows.
        table.show(cart_of(line(2), line(3, price_cents=999)))
        await pilot.pause()
        assert column(table, "price") == ["$20.00", "$9.99"] and table.current_item() == 3
        table.show(cart_of())
        assert table.row_ids == [] and table.current_item() is None


# -- the upload queue ------------------------------------------------------------------------


async def test_the_upload_queue_lists_files_once_and_says_how_they_went(tmp_path: Path) -> None:
    pictures = []
    for name, size in (("sunset.jpg", 2048), ("dune.png", 1024)):
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        pictures.append(path)
    app = HarnessApp(lambda: UploadQueue(id="upload-queue"), root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        queue = app.query_one(UploadQueue)
        note = queue.query_one("#upload-queue-empty")
        assert note.display and queue.describe() == "To upload"
        first = await queue.add(pictures[0], 2048)
        assert await queue.add(pictures[0], 2048) is first  # once
        await queue.add(pictures[1], 1024)
        await pilot.pause()
        assert not note.display and list(queue.rows) == pictures
        assert queue.describe() == "To upload: 2 pictures · 3 KB"
        first.report("listed as #7", done=True)
        queue.rows[pictures[1]].report("failed: too large", failed=True)
        await pilot.pause()
        assert first.has_class("-done") and str(first.query_one(".status", Static).render()) == (
            "listed as #7"
        )
        assert queue.rows[pictures[1]].has_class("-failed")
        await queue.discard(pictures[0])
        assert queue.describe() == "To upload: 1 picture · 1 KB"
        await queue.clear()
        await pilot.pause()
        assert queue.rows == {} and note.display and not queue.query("UploadRow")


def test_the_harness_is_a_shop_context(tmp_path: Path) -> None:
    app = HarnessApp(Static, root=tmp_path)
    assert as_context(app).currency == "USD"
