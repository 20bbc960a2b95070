"""Provides :class:`OrdersScreen`: the person's orders and, on a second tab, sales of their items.

Both lists come newest first in batches (the next one when the cursor nears the end, or on ``n``).
Enter on an order shows its lines; Enter on a sale opens the item sold. An order placed in this app
appears at the top at once.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import TabbedContent, TabPane

from protocol import commerce_client
from protocol.messages.commerce import Order, OrderSummary, Sale
from protocol.money import format_price
from tui.data.commerce import format_when, order_contents, summary_of
from tui.dialogs.order import OrderDialog
from tui.screens.base import PixmartScreen
from tui.screens.item import ItemScreen
from tui.widgets.batch_table import BatchTable, Cell, Column

ORDER_COLUMNS: tuple[Column, ...] = (
    Column("when", "Date", 16),
    Column("order", "Order", 7, right=True),
    Column("items", "Items", 5, right=True),
    Column("units", "Units", 5, right=True),
    Column("contents", "What", 54),
    Column("total", "Total", 14, right=True),
)
SALE_COLUMNS: tuple[Column, ...] = (
    Column("when", "Date", 16),
    Column("order", "Order", 7, right=True),
    Column("title", "Item", 36),
    Column("quantity", "Qty", 5, right=True),
    Column("price", "Price", 11, right=True),
    Column("total", "Total", 12, right=True),
    Column("buyer", "Buyer", 16),
)
ORDERS_TAB = "orders-tab"
SALES_TAB = "sales-tab"


def _right(text: str, style: str = "") -> Text:
    return Text(text, justify="right", style=style)


def order_cells(summary: OrderSummary) -> tuple[Cell, ...]:
    """Date, order id, items, units, what was bought and the total of an order."""
    return (
        format_when(summary.created_at),
        _right(f"#{summary.id}"),
        _right(f"{summary.line_count:,}"),
        _right(f"{summary.units:,}"),
        Content(order_contents(summary)),
        _right(format_price(summary.total_cents, summary.currency), "bold"),
    )


def sale_cells(sale: Sale) -> tuple[Cell, ...]:
    """Date, order id, item, units, unit price, total and buyer of a sale."""
    return (
        format_when(sale.sold_at),
        _right(f"#{sale.order_id}"),
        Content(sale.title),
        _right(f"{sale.quantity:,}"),
        _right(format_price(sale.unit_price_cents, sale.currency)),
        _right(format_price(sale.line_total_cents, sale.currency), "bold"),
        Content(sale.buyer_name),
    )


def _count(noun: str) -> Callable[[int], str]:
    def count(n: int) -> str:
        return f"{n:,} {noun}{'' if n == 1 else 's'}"

    return count


class OrdersScreen(PixmartScreen):
    """My orders (newest first) and, for sellers, the sales of their items."""

    TITLE = "Orders"
    #: The rows have the focus when the screen shows, not the tabs above them.
    AUTO_FOCUS = "#orders-list RowTable"

    DEFAULT_CSS = """
    OrdersScreen {
        #orders-tabs { height: 1fr; }
        TabPane { padding: 0; height: 1fr; }
        ContentSwitcher { height: 1fr; }
    }
    """

    BINDINGS = [
        Binding(
            "S",
            "toggle_sales",
            "Orders/sales",
            id="orders.sales",
            tooltip="Switch between your orders and the sales of your items",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._orders: dict[int, Order] = {}

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="orders-tabs", initial=ORDERS_TAB):
            with TabPane("My orders", id=ORDERS_TAB):
                yield BatchTable[OrderSummary](
                    columns=ORDER_COLUMNS,
                    cells=order_cells,
                    key=lambda summary: summary.id,
                    count=_count("order"),
                    empty_text="You have not bought anything yet.\n\nPress c for your cart.",
                    id="orders-list",
                )
            with TabPane("Sales", id=SALES_TAB):
                yield BatchTable[Sale](
                    columns=SALE_COLUMNS,
                    cells=sale_cells,
                    key=lambda sale: (sale.order_id, sale.item_id),
                    count=_count("sale"),
                    empty_text="Nothing of yours has been sold yet.\n\nPress u to sell pictures.",
                    id="sales-list",
                )

    @property
    def orders(self) -> BatchTable[OrderSummary]:
        """The orders list."""
        return self.query_one("#orders-list", BatchTable)

    @property
    def sales(self) -> BatchTable[Sale]:
        """The sales list."""
        return self.query_one("#sales-list", BatchTable)

    @property
    def showing_sales(self) -> bool:
        """Whether the sales tab is the one shown."""
        return self.query_one(TabbedContent).active == SALES_TAB

    def on_mount(self) -> None:
        self.pixmart.cart.orders_placed.subscribe(self, self._order_placed)
        self.orders.load(self._fetch_orders)

    def on_screen_resume(self) -> None:
        shown = self.sales if self.showing_sales else self.orders
        if self.focused is None or self.focused not in shown.walk_children():
            shown.table.focus()

    # -- loading -------------------------------------------------------------------------------

    async def _fetch_orders(self, cursor: str | None) -> tuple[list[OrderSummary], str | None]:
        app = self.pixmart
        batch = await commerce_client.order_batch(
            app.require_session(), limit=app.listing_batch, cursor=cursor
        )
        return batch.orders, batch.cursor

    async def _fetch_sales(self, cursor: str | None) -> tuple[list[Sale], str | None]:
        app = self.pixmart
        batch = await commerce_client.sales_batch(
            app.require_session(), limit=app.listing_batch, cursor=cursor
        )
        return batch.sales, batch.cursor

    def _order_placed(self, order: Order) -> None:
        self._orders[order.id] = order
        self.orders.prepend(summary_of(order))

    # -- tabs ----------------------------------------------------------------------------------

    def action_toggle_sales(self) -> None:
        """Show the sales of your items, or your orders again."""
        self.query_one(TabbedContent).active = ORDERS_TAB if self.showing_sales else SALES_TAB

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, message: TabbedContent.TabActivated) -> None:
        if message.pane.id == SALES_TAB:
            if not self.sales.loaded:
                self.sales.load(self._fetch_sales)
            self.sales.table.focus()
            self.title = "Sales"
        else:
            self.orders.table.focus()
            self.title = "Orders"

    # -- opening -------------------------------------------------------------------------------

    def action_open(self) -> None:
        """Show the highlighted order's lines, or open the item of the highlighted sale."""
        if self.showing_sales:
            sale = self.sales.current
            if sale is not None:
                self.app.push_screen(ItemScreen(sale.item_id))
        else:
            summary = self.orders.current
            if summary is not None:
                self._show_order(summary.id)

    @on(BatchTable.Opened)
    def _opened(self, message: BatchTable.Opened) -> None:
        message.stop()
        self.action_open()

    @work(exclusive=True, group="order")
    async def _show_order(self, order_id: int) -> None:
        app = self.pixmart
        order = self._orders.get(order_id)
        if order is None:
            try:
                order = await commerce_client.get_order(app.require_session(), order_id)
            except Exception as exc:
                app.report_failure(exc)
                return
            self._orders[order_id] = order
        await self.app.push_screen(OrderDialog(order))


__all__ = ["ORDER_COLUMNS", "SALE_COLUMNS", "OrdersScreen", "order_cells", "sale_cells"]
