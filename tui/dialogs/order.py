"""Provides :class:`OrderDialog`: one order with its lines, sellers and total."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from protocol.messages.commerce import Order
from protocol.money import format_price
from tui.data.commerce import format_when, items, units

#: What the dialog hands back: ``"orders"`` when the person asked for the orders screen.
OrderDialogResult = str | None


def order_table(order: Order) -> Table:
    """The order's lines: title, seller, units, unit price and line total, right-aligned."""
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("Item", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("Seller", max_width=16, no_wrap=True, overflow="ellipsis")
    table.add_column("Qty", justify="right")
    table.add_column("Price", justify="right")
    table.add_column("Total", justify="right")
    for line in order.lines:
        table.add_row(
            Text(line.title),
            Text(line.seller_name, style="dim"),
            f"{line.quantity:,}",
            format_price(line.unit_price_cents, order.currency),
            format_price(line.line_total_cents, order.currency),
        )
    return table


class OrderDialog(ModalScreen[OrderDialogResult]):
    """Shows an order as it was bought (lines stay readable after an item is deleted).

    Args:
        order: the order with its lines.
        placed: it was just placed by this app (the heading thanks the person).
        replayed: the checkout had already gone through earlier; nothing more was bought.
        offer_orders: offer a way on to the orders screen (when not opened from there).
    """

    DEFAULT_CSS = """
    OrderDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 92;
            max-height: 90%;
            height: auto;
            padding: 1 2;
            border: thick $primary;
            border-title-align: center;
            background: $surface;
        }
        &.-placed > Vertical { border: thick $success; }
        .title { text-style: bold; width: 100%; }
        #order-meta { color: $text-muted; width: 100%; }
        #order-replayed { color: $text-warning; width: 100%; margin-top: 1; }
        VerticalScroll { height: auto; max-height: 20; margin-top: 1; }
        #order-total { width: 100%; text-align: right; margin-top: 1; }
        Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
        Button { margin-left: 2; }
    }
    """

    BINDINGS = [
        Binding("escape,enter", "close", "Close", id="order.close"),
        Binding("o", "orders", "All orders", id="order.orders"),
    ]

    def __init__(
        self,
        order: Order,
        *,
        placed: bool = False,
        replayed: bool = False,
        offer_orders: bool = False,
    ) -> None:
        super().__init__(classes="-placed" if placed else None)
        self.order = order
        self.placed = placed
        self.replayed = replayed
        self.offer_orders = offer_orders

    def compose(self) -> ComposeResult:
        order = self.order
        count = sum(line.quantity for line in order.lines)
        with Vertical() as box:
            box.border_title = f"Order #{order.id}"
            if self.placed:
                heading = f"Thank you: order #{order.id} is placed."
            else:
                heading = f"Order #{order.id}"
            yield Label(Content(heading), classes="title")
            yield Static(
                Content(
                    f"{format_when(order.created_at)} · {items(len(order.lines))}, "
                    f"{units(count)} · paid in {order.currency}"
                ),
                id="order-meta",
            )
            if self.replayed:
                yield Static(
                    "Your earlier checkout had already gone through, so nothing more was bought. "
                    "Whatever is still in the cart stays there.",
                    id="order-replayed",
                )
            with VerticalScroll():
                yield Static(order_table(order), id="order-lines")
            yield Static(
                Content.assemble(
                    "Total paid ",
                    (format_price(order.total_cents, order.currency), "$text-success bold"),
                ),
                id="order-total",
            )
            with Horizontal():
                if self.offer_orders:
                    yield Button("All orders", id="orders")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "orders":
            return self.offer_orders
        return True

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Close the order."""
        self.dismiss(None)

    @on(Button.Pressed, "#orders")
    def action_orders(self) -> None:
        """Close it and show every order."""
        self.dismiss("orders")


__all__ = ["OrderDialog", "OrderDialogResult", "order_table"]
