"""Provides :class:`DashboardScreen`: a seller's sales at a glance, with charts.

Revenue and units per day (or per week, ``w``) as plotext bar charts, the best-selling items and
the items low on stock or sold out. The server sums everything
(:func:`protocol.commerce_client.sales_summary`); the screen asks again whenever it is shown and
on ``r``, in a worker, so the app never waits for it. A seller paid in several currencies sees one
at a time (``$`` for the next): amounts in different currencies are never added together.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from protocol import commerce_client
from protocol.messages.sales import CurrencySales, SalesSummary
from tui.data.sales import (
    Period,
    revenue_series,
    stock_title,
    stock_words,
    top_cells,
    totals_text,
    units_series,
)
from tui.screens.base import PixmartScreen
from tui.screens.item import ItemScreen
from tui.widgets.sales_chart import SalesChart

#: What the dashboard asks the server for: 30 days, 12 weeks, 5 items per list, low at 3 units.
DAYS, WEEKS, TOP, LOW_STOCK = 30, 12, 5, 3
#: Widths of the tables' fixed columns (the title takes what is left of the table's share).
REVENUE_WIDTH, UNITS_WIDTH, LEFT_WIDTH, STOCK_WIDTH = 10, 5, 4, 8
#: The tables' shares of the screen's width (as their CSS widths, 3fr and 2fr, say).
TOP_SHARE, STOCK_SHARE = 3 / 5, 2 / 5
#: Cells each column adds around its content (the tables' cell padding), and the scroll bar.
_PADDING, _SCROLLBAR = 2, 1


class DashboardScreen(PixmartScreen):
    """The seller's dashboard: charts of revenue and units, top items, stock running out."""

    TITLE = "Dashboard"
    AUTO_FOCUS = "#dashboard-top"

    DEFAULT_CSS = """
    DashboardScreen {
        #dashboard-totals { height: 1; padding: 0 1; background: $boost; }
        #dashboard-charts { height: 3fr; min-height: 8; }
        #dashboard-lists { height: 2fr; min-height: 6; }
        #dashboard-top-list { width: 3fr; }
        #dashboard-stock-list { width: 2fr; }
        .dashboard-heading { height: 1; padding: 0 1; color: $text-accent; text-style: bold; }
        DataTable { height: 1fr; }
    }
    """

    BINDINGS = [
        Binding(
            "w",
            "toggle_period",
            "Days/weeks",
            id="dashboard.period",
            tooltip="Chart sales per day or per week",
        ),
        Binding(
            "t",
            "toggle_top",
            "Top by",
            id="dashboard.top",
            tooltip="Rank the top items by revenue or by units",
        ),
        Binding(
            "dollar_sign",
            "next_currency",
            "Currency",
            id="dashboard.currency",
            key_display="$",
            tooltip="Show the sales paid in the next currency",
        ),
        Binding("r", "reload", "Refresh", id="dashboard.reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: The summary shown, ``None`` until the first one arrives.
        self.summary: SalesSummary | None = None
        self.period = Period.DAY
        self.by_units = False
        self._currency_index = 0

    def compose_body(self) -> ComposeResult:
        yield Static("Loading your sales…", id="dashboard-totals")
        with Horizontal(id="dashboard-charts"):
            yield SalesChart(id="dashboard-revenue")
            yield SalesChart(id="dashboard-units")
        with Horizontal(id="dashboard-lists"):
            with Vertical(id="dashboard-top-list"):
                yield Static("Top items", id="dashboard-top-heading", classes="dashboard-heading")
                yield DataTable(id="dashboard-top", cursor_type="row", zebra_stripes=True)
            with Vertical(id="dashboard-stock-list"):
                yield Static("Stock running out", classes="dashboard-heading")
                yield DataTable(id="dashboard-stock", cursor_type="row", zebra_stripes=True)

    @property
    def currency_sales(self) -> CurrencySales | None:
        """The part of the summary shown: the sales of one currency."""
        if self.summary is None or not self.summary.currencies:
            return None
        return self.summary.currencies[self._currency_index % len(self.summary.currencies)]

    def on_resize(self) -> None:
        self._draw()  # the titles get what the new width leaves them

    def on_screen_resume(self) -> None:
        self.action_reload()

    # -- loading -------------------------------------------------------------------------------

    def action_reload(self) -> None:
        """Ask the server for the summary again."""
        self._load()

    @work(exclusive=True, group="dashboard")
    async def _load(self) -> None:
        app = self.pixmart
        first = self.summary is None
        if first:
            self.query_one("#dashboard-charts").loading = True
        try:
            summary = await commerce_client.sales_summary(
                app.require_session(), days=DAYS, weeks=WEEKS, top=TOP, low_stock=LOW_STOCK
            )
        except Exception as exc:
            words = app.report_failure(exc)
            if first:
                self.query_one("#dashboard-totals", Static).update(f"No figures: {words}")
            return
        finally:
            self.query_one("#dashboard-charts").loading = False
        self.show(summary)

    def show(self, summary: SalesSummary) -> None:
        """Show ``summary`` (kept on the currency shown, when it still has sales)."""
        shown = self.currency_sales
        codes = [sales.currency for sales in summary.currencies]
        self._currency_index = (
            codes.index(shown.currency) if shown and shown.currency in codes else 0
        )
        self.summary = summary
        self.refresh_bindings()
        self._draw()

    # -- drawing -------------------------------------------------------------------------------

    def _draw(self) -> None:
        summary, sales = self.summary, self.currency_sales
        if summary is None or sales is None:
            return
        self.query_one("#dashboard-totals", Static).update(totals_text(summary, sales))
        self.query_one("#dashboard-revenue", SalesChart).show(revenue_series(sales, self.period))
        self.query_one("#dashboard-units", SalesChart).show(units_series(sales, self.period))
        self._fill_top(sales)
        self._fill_stock(summary)

    def _title_width(self, share: float, fixed: tuple[int, ...]) -> int:
        """What a table with ``share`` of the screen's width leaves its title column beside
        columns ``fixed`` wide."""
        room = int(self.size.width * share)
        return max(8, room - sum(fixed) - (len(fixed) + 1) * _PADDING - _SCROLLBAR)

    def _fill_top(self, sales: CurrencySales) -> None:
        items = sales.top_by_units if self.by_units else sales.top_by_revenue
        measure = "units" if self.by_units else "revenue"
        days = self.summary.days if self.summary else DAYS
        heading = f"Top items by {measure}, last {days} days"
        self.query_one("#dashboard-top-heading", Static).update(heading)
        table = self.query_one("#dashboard-top", DataTable)
        table.clear(columns=True)
        width = self._title_width(TOP_SHARE, (REVENUE_WIDTH, UNITS_WIDTH, LEFT_WIDTH))
        table.add_column("Item", key="title", width=width)
        table.add_column(Text("Revenue", justify="right"), key="revenue", width=REVENUE_WIDTH)
        table.add_column(Text("Units", justify="right"), key="units", width=UNITS_WIDTH)
        table.add_column(Text("Left", justify="right"), key="left", width=LEFT_WIDTH)
        for item in items:
            title, revenue, units, left = top_cells(item, sales.currency)
            gone = item.stock is None
            table.add_row(
                Text(title, style="strike dim" if gone else "", no_wrap=True, overflow="ellipsis"),
                Text(revenue, justify="right", style="bold"),
                Text(units, justify="right"),
                Text(left, justify="right", style="red" if item.stock == 0 else ""),
                key=str(item.item_id),
            )
        if not items:
            table.add_row(Text("Nothing sold in this window", style="dim"), "", "", "")

    def _fill_stock(self, summary: SalesSummary) -> None:
        table = self.query_one("#dashboard-stock", DataTable)
        table.clear(columns=True)
        table.add_column("Item", key="title", width=self._title_width(STOCK_SHARE, (STOCK_WIDTH,)))
        table.add_column(Text("Stock", justify="right"), key="stock", width=STOCK_WIDTH)
        for item in [*summary.sold_out, *summary.low_stock]:
            style = "bold red" if item.stock == 0 else "yellow"
            table.add_row(
                Text(stock_title(item), no_wrap=True, overflow="ellipsis"),
                Text(stock_words(item), justify="right", style=style),
                key=str(item.item_id),
            )
        more = summary.sold_out_count - len(summary.sold_out)
        more += summary.low_stock_count - len(summary.low_stock)
        if more > 0:
            table.add_row(Text(f"… and {more:,} more", style="dim"), "")
        if not summary.sold_out_count and not summary.low_stock_count:
            threshold = summary.low_stock_threshold
            table.add_row(Text(f"Every item has more than {threshold} left", style="dim"), "")

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_currency":
            return self.summary is not None and len(self.summary.currencies) > 1
        return True

    def action_toggle_period(self) -> None:
        """Chart per week instead of per day, or back."""
        self.period = Period.WEEK if self.period is Period.DAY else Period.DAY
        self._draw()

    def action_toggle_top(self) -> None:
        """Rank the top items by units instead of revenue, or back."""
        self.by_units = not self.by_units
        self._draw()

    def action_next_currency(self) -> None:
        """Show the sales paid in the next currency."""
        self._currency_index += 1
        if self.summary is not None:
            self._currency_index %= len(self.summary.currencies)
        self._draw()

    @on(DataTable.RowSelected)
    def _row_selected(self, message: DataTable.RowSelected) -> None:
        """Enter (or a click) on a top item or a stock row opens the item."""
        message.stop()
        if message.row_key.value is not None:
            self.app.push_screen(ItemScreen(int(message.row_key.value)))


__all__ = ["DashboardScreen"]
