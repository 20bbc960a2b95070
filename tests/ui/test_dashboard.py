"""The seller dashboard: keys, charts, tables, loading without freezing, and snapshots.

The shop is :mod:`tests.ui.sales_floor`'s: a month of ``dee``'s sales at fixed dates, one order
paid in USD, the server's sales report pinned to 2 December 2026, so the charts are the same on
every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from protocol.client import ConnectionStatus
from protocol.messages.sales import CurrencySales, GetSalesSummary, SalesPoint, SalesSummary
from tests.ui.conftest import until
from tests.ui.harness import HarnessApp
from tests.ui.sales_floor import NOW, SalesFloor, open_sales_floor
from tests.ui.snapshot_shop import SnapCompare, comparer
from tests.ui.test_snapshots import in_gallery, make_app, settle
from tui.app import PixmartApp
from tui.keys import key_commands
from tui.screens import DashboardScreen, ItemScreen
from tui.widgets.sales_chart import SalesChart

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SalesFloor]:
    shop = open_sales_floor(tmp_path_factory.mktemp("sales-floor"))
    try:
        yield shop
    finally:
        shop.server.stop()


@pytest.fixture
def snap(
    snap_compare: SnapCompare, floor: SalesFloor, monkeypatch: pytest.MonkeyPatch
) -> SnapCompare:
    return comparer(snap_compare, floor.server, monkeypatch)


def dashboard_of(app: PixmartApp) -> DashboardScreen:
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


async def on_dashboard(pilot: Pilot[None]) -> DashboardScreen:
    """From the gallery, press D and wait for the figures."""
    app = pilot.app
    assert isinstance(app, PixmartApp)
    await in_gallery(pilot)
    await pilot.press("D")
    await until(
        pilot,
        lambda: isinstance(app.screen, DashboardScreen) and app.screen.summary is not None,
        what="the dashboard's figures",
    )
    return dashboard_of(app)


def cells(screen: DashboardScreen, table_id: str) -> list[list[str]]:
    """The text of every row of a table."""
    table = screen.query_one(table_id, DataTable)
    return [[str(cell) for cell in table.get_row_at(row)] for row in range(table.row_count)]


def chart(screen: DashboardScreen, chart_id: str) -> tuple[str, list[float]]:
    series = screen.query_one(chart_id, SalesChart).series
    assert series is not None
    return series.title, series.values


# -- pilot ----------------------------------------------------------------------------------------


async def test_the_dashboard_key_is_in_the_footer_and_the_palette(
    floor: SalesFloor, tmp_path: Path
) -> None:
    app = make_app(floor.seller, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await in_gallery(pilot)
        commands = {command.description: command for command in key_commands(app.screen)}
        assert commands["Dashboard"].keys == "D"
        assert commands["Dashboard"].enabled
        await on_dashboard(pilot)


async def test_charts_and_tables_follow_the_keys(floor: SalesFloor, tmp_path: Path) -> None:
    app = make_app(floor.seller, tmp_path)
    lighthouse, cranes, hall, fog, ferry, lanterns = floor.item_ids
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_dashboard(pilot)
        summary = screen.summary
        assert summary is not None and summary.today == "2026-12-02"
        assert [sales.currency for sales in summary.currencies] == ["EUR", "USD"]
        title, values = chart(screen, "#dashboard-revenue")
        assert title == "Revenue per day (EUR)" and len(values) == 30
        assert values[-1] == 6.5 and sum(values) == pytest.approx(247.5)
        assert chart(screen, "#dashboard-units")[1][-2] == 3  # 1 December: 2 + 1 units
        totals = str(screen.query_one("#dashboard-totals", Static).content)
        assert "€247.50 · 20 units · 8 orders · EUR 1 of 2" in totals
        assert [row[0] for row in cells(screen, "#dashboard-top")][:2] == [
            "Lighthouse at dusk",
            "Pier lanterns",
        ]
        assert cells(screen, "#dashboard-stock") == [
            ["Fog over the bay", "sold out"],
            ["Harbour cranes", "1 left"],
            ["Night ferry", "2 left"],
            ["Old market hall", "3 left"],
        ]

        await pilot.press("w")
        title, values = chart(screen, "#dashboard-revenue")
        assert title == "Revenue per week (EUR)" and len(values) == 12
        assert values[-1] == 12.5 + 57.75 + 6.5  # the week of Monday 30 November
        await pilot.press("t")
        assert cells(screen, "#dashboard-top")[0][:3] == ["Pier lanterns", "€65.00", "10"]
        await pilot.press("dollar_sign")
        title, values = chart(screen, "#dashboard-revenue")
        assert title == "Revenue per week (USD)" and sum(values) == 12.5
        assert cells(screen, "#dashboard-top") == [["Harbour cranes", "$12.50", "1", "1"]]
        await pilot.press("dollar_sign", "w")
        assert chart(screen, "#dashboard-units")[0] == "Units per day"
        assert screen.currency_sales is not None and screen.currency_sales.currency == "EUR"
        del lighthouse, cranes, hall, fog, ferry, lanterns


async def test_enter_on_a_top_item_opens_it(floor: SalesFloor, tmp_path: Path) -> None:
    app = make_app(floor.seller, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_dashboard(pilot)
        assert screen.focused is screen.query_one("#dashboard-top", DataTable)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        item_screen = app.screen
        assert isinstance(item_screen, ItemScreen)
        assert item_screen.item_id == floor.item_ids[5]  # Pier lanterns, second by revenue


async def test_the_app_answers_keys_while_the_figures_load(
    floor: SalesFloor, tmp_path: Path
) -> None:
    """A slow summary shows the loading indicator and leaves the app free to move on."""
    server = floor.server.server
    assert server is not None and server.domains is not None
    commerce = server.domains.commerce.service
    assert commerce is not None
    report = commerce.report
    gate = asyncio.Event()
    original = report.summary

    async def slow(seller_id: int, request: GetSalesSummary) -> SalesSummary:
        await gate.wait()
        return await original(seller_id, request)

    report.summary = slow  # type: ignore[method-assign]
    try:
        app = make_app(floor.seller, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await in_gallery(pilot)
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the screen")
            screen = dashboard_of(app)
            await until(pilot, lambda: screen.query_one("#dashboard-charts").loading)
            await pilot.press("o")  # the app is not waiting for the server
            await until(pilot, lambda: app.current_mode == "orders", what="the orders")
            floor.server.run(_open(gate))
            await pilot.press("D")
            await until(pilot, lambda: screen.summary is not None, what="the figures")
            assert not screen.query_one("#dashboard-charts").loading
    finally:
        report.summary = original  # type: ignore[method-assign]


async def _open(gate: asyncio.Event) -> None:
    gate.set()  # in the server's loop, where the gate waits


# -- one screen in a harness ----------------------------------------------------------------------


def _zeros(start: str, count: int) -> list[SalesPoint]:
    return [SalesPoint(start=start, revenue_cents=0, units=0, orders=0)] * count


EMPTY = SalesSummary(
    generated_at=NOW,
    today="2026-12-02",
    days=30,
    weeks=12,
    low_stock_threshold=3,
    currencies=[
        CurrencySales(
            currency="USD",
            revenue_cents=0,
            units=0,
            orders=0,
            days=_zeros("2026-11-03", 30),
            weeks=_zeros("2026-09-14", 12),
            top_by_revenue=[],
            top_by_units=[],
        )
    ],
    low_stock=[],
    low_stock_count=0,
    sold_out=[],
    sold_out_count=0,
)


class ScreenHarness(HarnessApp):
    """A harness that can show a full screen: what the status header watches, too."""

    cart_count: reactive[int] = reactive(0)
    connection: reactive[ConnectionStatus | None] = reactive(None)


async def test_an_empty_shop_and_no_server(tmp_path: Path) -> None:
    app = ScreenHarness(lambda: Static("under the dashboard"), root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = DashboardScreen()
        await app.push_screen(screen)
        await until(pilot, lambda: app.failures, what="the failure")
        totals = screen.query_one("#dashboard-totals", Static)
        assert str(totals.content) == "No figures: A harness has no server"
        assert not screen.query_one("#dashboard-charts").loading
        assert not screen.check_action("next_currency", ())

        screen.show(EMPTY)
        await pilot.pause()
        assert "$0.00 · 0 units · 0 orders" in str(totals.content)
        assert "of 1" not in str(totals.content)
        assert chart(screen, "#dashboard-revenue")[1] == [0.0] * 30
        assert cells(screen, "#dashboard-top") == [["Nothing sold in this window", "", "", ""]]
        assert cells(screen, "#dashboard-stock") == [["Every item has more than 3 left", ""]]


# -- snapshots ------------------------------------------------------------------------------------


def test_dashboard(snap: SnapCompare, floor: SalesFloor, tmp_path: Path) -> None:
    """dee's dashboard at 120x40: "Last 30 days to 2026-12-02 UTC · €247.50 · 20 units ·
    8 orders · EUR 1 of 2"; two plotext bar charts, "Revenue per day (EUR)" (tallest bars on
    11-27 and 12-01, ticks 0 to 60) and "Units per day", dated 11-07 to 12-02; "Top items by
    revenue" (Lighthouse at dusk €72.00, Pier lanterns €65.00, ...) and "Stock running out"
    (Fog over the bay sold out in red, then 1, 2 and 3 left in yellow); the footer offers
    w Days/weeks, t Top by, $ Currency and D Dashboard."""
    app = make_app(floor.seller, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await on_dashboard(pilot)
        await settle(pilot)

    assert snap(app, run_before)


def test_dashboard_weeks(snap: SnapCompare, floor: SalesFloor, tmp_path: Path) -> None:
    """After w and t: "Revenue per week (EUR)" and "Units per week" from 09-14 to 11-30, the
    bars in the last six weeks (the tallest, €76.75, in the week of 11-30); the top items ranked
    "by units" (Pier lanterns, 10 units, first)."""
    app = make_app(floor.seller, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await on_dashboard(pilot)
        await pilot.press("w", "t")
        await settle(pilot)

    assert snap(app, run_before)


def test_dashboard_at_80x24(snap: SnapCompare, floor: SalesFloor, tmp_path: Path) -> None:
    """The same dashboard at 80x24: the totals line whole, both charts side by side with four
    dates each, the top items (titles in full, "Lighthouse at dusk") beside the stock list."""
    app = make_app(floor.seller, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await on_dashboard(pilot)
        await settle(pilot)

    assert snap(app, run_before, (80, 24))
