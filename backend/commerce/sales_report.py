"""Provides :class:`SalesReport`: a seller's dashboard, summed by the database, framed in UTC.

The report asks the repository for sums per UTC day and per ISO week (Monday to Sunday, UTC) of
the seller's own order lines, for the top items and for the stock levels, then lays the sums on
the calendar: one point per day and per week of the windows, zeros where nothing sold, one
series per currency paid in (amounts in different currencies are never added together). Only
the windows are walked here (at most a year of days), never the orders.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from backend.commerce.repository import ItemSales, Periods, PeriodSales, SalesReportRepository
from protocol.messages.sales import (
    STOCK_LIST_LIMIT,
    CurrencySales,
    GetSalesSummary,
    SalesPoint,
    SalesSummary,
    TopItem,
)

DAY: Final = 86_400
WEEK: Final = 7 * DAY
#: 1970-01-01 was a Thursday: shifted by three days, weeks of the epoch start on Mondays.
_MONDAY_SHIFT: Final = 3 * DAY
DAYS: Final = Periods(width=DAY)
WEEKS: Final = Periods(width=WEEK, shift=_MONDAY_SHIFT)


@dataclass(frozen=True, slots=True)
class Window:
    """Consecutive periods ``first .. last`` (inclusive) of one kind."""

    periods: Periods
    first: int
    last: int

    @classmethod
    def ending_at(cls, periods: Periods, now: float, count: int) -> Window:
        """The ``count`` periods up to and including the one ``now`` falls in."""
        last = int((now + periods.shift) // periods.width)
        return cls(periods, last - count + 1, last)

    @property
    def since(self) -> float:
        """When the first period starts (seconds since the epoch)."""
        return float(self.start_of(self.first))

    @property
    def until(self) -> float:
        """When the period after the last starts."""
        return float(self.start_of(self.last + 1))

    def start_of(self, period: int) -> int:
        """When ``period`` starts."""
        return period * self.periods.width - self.periods.shift

    def series(self, sums: Sequence[PeriodSales]) -> list[SalesPoint]:
        """One point per period of the window, oldest first; ``sums`` in it, zeros elsewhere."""
        found = {row.period: row for row in sums}
        points = []
        for period in range(self.first, self.last + 1):
            row = found.get(period)
            points.append(
                SalesPoint(
                    start=iso_date(self.start_of(period)),
                    revenue_cents=row.revenue_cents if row else 0,
                    units=row.units if row else 0,
                    orders=row.orders if row else 0,
                )
            )
        return points


def iso_date(timestamp: float) -> str:
    """The UTC date of ``timestamp`` as ``YYYY-MM-DD``."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date().isoformat()


class SalesReport:
    """Builds sellers' sales summaries.

    Args:
        repository: Where orders and items are stored.
        currency: The server's currency, listed first in every summary.
        clock: The time now, in seconds since the epoch (a fixed one in tests).
    """

    def __init__(
        self,
        repository: SalesReportRepository,
        *,
        currency: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._currency = currency
        self.clock = clock

    async def summary(self, seller_id: int, request: GetSalesSummary) -> SalesSummary:
        """The summary of ``seller_id``'s own sales and stock, as ``request`` asks.

        The caller is the seller: the handler passes the logged-in user's id, never one the
        client names, so nobody sees another seller's figures.
        """
        now = self.clock()
        days = Window.ending_at(DAYS, now, request.days)
        weeks = Window.ending_at(WEEKS, now, request.weeks)
        repository = self._repository
        by_day = await repository.sales_by_period(
            seller_id, DAYS, since=days.since, until=days.until
        )
        by_week = await repository.sales_by_period(
            seller_id, WEEKS, since=weeks.since, until=weeks.until
        )
        top = await repository.top_items(
            seller_id, since=days.since, until=days.until, limit=request.top
        )
        stock = await repository.stock_levels(
            seller_id, threshold=request.low_stock, limit=STOCK_LIST_LIMIT
        )
        currencies = {self._currency} | {row.currency for row in (*by_day, *by_week)}
        return SalesSummary(
            generated_at=now,
            today=iso_date(now),
            days=request.days,
            weeks=request.weeks,
            low_stock_threshold=request.low_stock,
            currencies=[
                _currency_sales(currency, days, by_day, weeks, by_week, top, request.top)
                for currency in sorted(currencies, key=lambda code: (code != self._currency, code))
            ],
            low_stock=stock.low,
            low_stock_count=stock.low_count,
            sold_out=stock.sold_out,
            sold_out_count=stock.sold_out_count,
        )


def _currency_sales(
    currency: str,
    days: Window,
    by_day: Sequence[PeriodSales],
    weeks: Window,
    by_week: Sequence[PeriodSales],
    top: Sequence[ItemSales],
    top_count: int,
) -> CurrencySales:
    """The part of a summary paid in ``currency``."""
    day_sums = [row for row in by_day if row.currency == currency]
    items = [row for row in top if row.currency == currency]
    return CurrencySales(
        currency=currency,
        revenue_cents=sum(row.revenue_cents for row in day_sums),
        units=sum(row.units for row in day_sums),
        orders=sum(row.orders for row in day_sums),  # an order falls on one day only
        days=days.series(day_sums),
        weeks=weeks.series([row for row in by_week if row.currency == currency]),
        top_by_revenue=_ranked(items, top_count, lambda row: row.by_revenue),
        top_by_units=_ranked(items, top_count, lambda row: row.by_units),
    )


def _ranked(
    items: Sequence[ItemSales], count: int, place: Callable[[ItemSales], int]
) -> list[TopItem]:
    """The items placed 1 to ``count`` by ``place``, best first."""
    chosen = sorted((row for row in items if place(row) <= count), key=place)
    return [
        TopItem(
            item_id=row.item_id,
            title=row.title,
            revenue_cents=row.revenue_cents,
            units=row.units,
            stock=row.stock,
        )
        for row in chosen
    ]
