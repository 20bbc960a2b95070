"""Provides :class:`CartTable`: the cart's lines as a table, one row a line, flagged.

Each row shows the title, price, the quantity wanted (in italics while on its way to the server),
the line total, the stock and the line's flags (sold out, price changed, no longer for sale). A
line being removed shows struck through. The quantities come from the app's
:class:`~tui.data.cart.CartModel`, so a change shows at once, before the server answers.
"""

from __future__ import annotations

from rich.text import Text
from textual.content import Content

from protocol.messages.commerce import Cart, CartLine
from protocol.money import format_price
from tui.context import ShopNode
from tui.data.commerce import for_sale, line_notes
from tui.widgets.batch_table import Cell, Column, RowTable, add_columns
from tui.widgets.card_grid import stock_label

#: The columns: 117 cells with padding, so 120 terminal columns fit.
COLUMNS = (
    Column("title", "Item", 34),
    Column("price", "Price", 11, right=True),
    Column("quantity", "Qty", 6, right=True),
    Column("total", "Line total", 12, right=True),
    Column("stock", "Stock", 12),
    Column("notes", "Notes", 30),
)


class CartTable(ShopNode, RowTable):
    """The lines of a cart, kept in the cart's order with the cursor on the same line."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        #: Item ids of the rows on screen, in order.
        self.row_ids: list[int] = []

    def on_mount(self) -> None:
        add_columns(self, COLUMNS)

    def show(self, cart: Cart) -> None:
        """Show ``cart``'s lines: in place when they are the same lines, else afresh."""
        ids = [line.item_id for line in cart.lines]
        if ids == self.row_ids:
            for line in cart.lines:
                for column, value in zip(COLUMNS, self.cells(line), strict=True):
                    self.update_cell(str(line.item_id), column.key, value)
        else:
            self._rebuild(cart)

    def _rebuild(self, cart: Cart) -> None:
        current = self.current_item()
        index = self.cursor_row
        self.clear()
        for line in cart.lines:
            self.add_row(*self.cells(line), key=str(line.item_id))
        self.row_ids = [line.item_id for line in cart.lines]
        if not self.row_ids:
            return
        if current is not None and current in self.row_ids:
            index = self.row_ids.index(current)
        self.move_cursor(row=max(0, min(index, len(self.row_ids) - 1)), animate=False)

    def current_item(self) -> int | None:
        """The item id of the line under the cursor."""
        if not self.row_ids or self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(str(row_key.value))

    def cells(self, line: CartLine) -> tuple[Cell, ...]:
        """One line's cells, with the quantity the person asked for last."""
        shop = self.pixmart.cart
        currency = self.pixmart.currency
        quantity = shop.quantity(line)
        buyable = for_sale(line)
        going = line.item_id in shop.removing
        faded = "dim strike" if going or not buyable else ""
        title = Text(line.title or "untitled", style=faded, no_wrap=True, overflow="ellipsis")
        price = Text(format_price(line.price_cents, currency), justify="right")
        if going or not buyable:
            price.stylize("dim")
        wanted = Text(f"{quantity:,}", justify="right", style="dim" if going else "")
        if shop.pending(line.item_id) and not going:
            wanted.stylize("italic")
        total = Text(format_price(line.price_cents * quantity, currency), justify="right")
        if going or not buyable:
            total.stylize("dim strike")  # not counted in the cart's total
        if not buyable:
            stock: Cell = Content.styled("—", "$text-muted")
        else:
            short = line.stock < quantity
            stock = Content.styled(stock_label(line.stock), "$text-error bold" if short else "")
        if going:
            notes: Cell = Content.styled("removing…", "$text-muted italic")
        else:
            parts: list[Content] = []
            for note in line_notes(line, currency):
                style = "$text-error bold" if note.blocking else "$text-warning"
                parts.append(Content.styled(note.text, style))
            notes = Content(" · ").join(parts)
        return (title, price, wanted, total, stock, notes)


__all__ = ["COLUMNS", "CartTable"]
