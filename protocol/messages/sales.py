"""Provides the seller's sales summary: revenue and units per day and per week, top items, stock.

Everything is computed by the server from the orders of the caller's own items (nobody sees
another seller's figures) and sent as exact integer minor units. Money in different currencies is
never added up: a seller whose shop sold in several currencies (the server's currency changed
once) gets one :class:`CurrencySales` per currency, the server's currency first.

Days and weeks are UTC calendar days and ISO weeks (Monday to Sunday, UTC), named by their first
day as an ISO date (``2026-11-30``). Each series covers the whole window asked for, oldest first,
days or weeks without sales included as zeros, and ends with the day or week of ``today``.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from protocol.messages.base import Message, Reply, Request

#: The longest windows a summary may ask for: a year of days, two years of weeks.
MAX_DAYS: Final = 366
MAX_WEEKS: Final = 104
#: The most items a top list may have.
MAX_TOP: Final = 50
#: The most items each stock list (low, sold out) carries; the counts say how many there are.
STOCK_LIST_LIMIT: Final = 50

SummaryDays = Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)]
SummaryWeeks = Annotated[int, msgspec.Meta(ge=1, le=MAX_WEEKS)]
TopCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_TOP)]
StockThreshold = Annotated[int, msgspec.Meta(ge=0, le=10**9)]


class SalesPoint(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """What sold in one day or week.

    Attributes:
        start: The first day of the period, an ISO date in UTC (a Monday for a week).
        revenue_cents: Sum of quantity × unit price paid, in minor units of the series' currency.
        units: Units sold.
        orders: Orders that bought at least one of the seller's items.
    """

    start: str
    revenue_cents: int
    units: int
    orders: int


class TopItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One of the seller's best-selling items over the days window.

    Attributes:
        title: The item's title when it last sold.
        stock: Units left now; ``None`` when the item was deleted since.
    """

    item_id: int
    title: str
    revenue_cents: int
    units: int
    stock: int | None


class CurrencySales(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The seller's sales paid in one currency.

    Attributes:
        revenue_cents: Revenue over the days window, in minor units of ``currency``.
        units: Units sold over the days window.
        orders: Orders over the days window.
        days: One point per day of the days window, oldest first.
        weeks: One point per ISO week of the weeks window, oldest first.
        top_by_revenue: The best items by revenue over the days window (ties: by units, then id).
        top_by_units: The best items by units over the days window (ties: by revenue, then id).
    """

    currency: str
    revenue_cents: int
    units: int
    orders: int
    days: list[SalesPoint]
    weeks: list[SalesPoint]
    top_by_revenue: list[TopItem]
    top_by_units: list[TopItem]


class StockItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One of the seller's items with little or no stock left (private ones included)."""

    item_id: int
    title: str
    stock: int
    price_cents: int
    public: bool


class SalesSummary(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The seller's dashboard.

    Attributes:
        generated_at: When the server computed it (seconds since the epoch).
        today: The last day of both windows: the server's current UTC date (ISO).
        days: Length of the days window, in days, ``today`` included.
        weeks: Length of the weeks window, in ISO weeks, the current one included.
        low_stock_threshold: Items with 1 to this many units left are low on stock.
        currencies: One entry per currency with sales in either window; the server's currency
            always comes first (all zeros when nothing sold), then the others by code.
        low_stock: Items with 1 to ``low_stock_threshold`` units left, fewest first.
        low_stock_count: How many items are low on stock (``low_stock`` may be cut short).
        sold_out: Items with no units left, by id.
        sold_out_count: How many items are sold out.
    """

    generated_at: float
    today: str
    days: int
    weeks: int
    low_stock_threshold: int
    currencies: list[CurrencySales]
    low_stock: list[StockItem]
    low_stock_count: int
    sold_out: list[StockItem]
    sold_out_count: int


class GetSalesSummary(Request):
    """The caller's sales summary over the last ``days`` days and ``weeks`` weeks (UTC).

    Attributes:
        top: Items in each top list.
        low_stock: Items with this many units or fewer (but some) are low on stock.
    """

    days: SummaryDays = 30
    weeks: SummaryWeeks = 12
    top: TopCount = 5
    low_stock: StockThreshold = 3


class SalesSummaryView(Reply):
    """The summary asked for."""

    summary: SalesSummary


MESSAGES: tuple[type[Message], ...] = (GetSalesSummary, SalesSummaryView)
