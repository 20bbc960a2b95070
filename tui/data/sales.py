"""Provides the seller dashboard's data as the TUI shows it: chart series, tick labels, rows.

Plain data and text (no widgets, no network): the server sums the sales
(:class:`~protocol.messages.sales.SalesSummary`); this module picks the series a chart draws, the
few dates its axis can hold, and the words of the tables, so the screen stays small.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from protocol.messages.sales import CurrencySales, SalesPoint, SalesSummary, StockItem, TopItem
from protocol.money import format_price, minor_digits


class Period(enum.StrEnum):
    """What one bar of the dashboard's charts stands for."""

    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True)
class ChartSeries:
    """One chart's bars, oldest first.

    Attributes:
        title: What the chart shows, e.g. ``Revenue per day (EUR)``.
        labels: A short label per bar (``11-28``), for the ticks the axis has room for.
        values: A height per bar. Revenue is drawn in whole currency units (a float, which is
            good enough for a bar's height; the exact amounts are in the tables and totals).
    """

    title: str
    labels: list[str]
    values: list[float]

    @property
    def empty(self) -> bool:
        """Whether every bar is zero."""
        return not any(self.values)


def points(sales: CurrencySales, period: Period) -> list[SalesPoint]:
    """The series of ``period`` of one currency."""
    return sales.days if period is Period.DAY else sales.weeks


def short_date(iso_date: str) -> str:
    """``2026-11-28`` → ``11-28``: month and day, what an axis has room for."""
    return iso_date[5:]


def revenue_series(sales: CurrencySales, period: Period) -> ChartSeries:
    """Revenue per day or week, in whole units of the currency."""
    scale = 10 ** minor_digits(sales.currency)
    series = points(sales, period)
    return ChartSeries(
        title=f"Revenue per {period.value} ({sales.currency})",
        labels=[short_date(point.start) for point in series],
        values=[point.revenue_cents / scale for point in series],
    )


def units_series(sales: CurrencySales, period: Period) -> ChartSeries:
    """Units sold per day or week."""
    series = points(sales, period)
    return ChartSeries(
        title=f"Units per {period.value}",
        labels=[short_date(point.start) for point in series],
        values=[float(point.units) for point in series],
    )


def tick_indexes(count: int, width: int, label_width: int = 5) -> list[int]:
    """Which of ``count`` bars get a label on an axis ``width`` cells wide.

    Evenly spaced, always the last (today, or this week), with a gap of at least two cells
    between labels ``label_width`` wide.
    """
    if count <= 0:
        return []
    room = max(1, (width + 2) // (label_width + 2))
    step = max(1, math.ceil(count / room))
    return sorted({*range(count - 1, -1, -step)})


def nice_ticks(top: float, rows: int) -> list[int]:
    """Whole, round y-axis ticks from 0 to at least ``top``, at most one per two ``rows``.

    Steps are 1, 2 or 5 times a power of ten, and never below 1: units are whole, and revenue
    is labelled in whole units of its currency.
    """
    if top <= 0:
        return [0, 1]
    wanted = max(1, rows // 2)
    rough = top / wanted
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    step = max(1, int(step))
    return [n * step for n in range(math.ceil(top / step) + 1)]


def tick_label(value: int) -> str:
    """``1200`` → ``1,200``; ``25000`` → ``25k``; ``3000000`` → ``3M``: a short axis label."""
    for size, suffix in ((1_000_000, "M"), (10_000, "k")):
        if value >= size:
            scaled = value / (size if suffix == "M" else 1_000)
            return f"{scaled:,.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:,}"


def totals_text(summary: SalesSummary, sales: CurrencySales) -> str:
    """The line above the charts: window, revenue, units and orders, and which currency of
    how many (when several)."""
    revenue = format_price(sales.revenue_cents, sales.currency)
    text = (
        f"Last {summary.days} days to {summary.today} UTC · {revenue} · "
        f"{_count(sales.units, 'unit')} · {_count(sales.orders, 'order')}"
    )
    codes = [entry.currency for entry in summary.currencies]
    if len(codes) > 1:
        text += f" · {sales.currency} {codes.index(sales.currency) + 1} of {len(codes)}"
    return text


def top_cells(item: TopItem, currency: str) -> tuple[str, str, str, str]:
    """Title, revenue, units and units left of a top item (``—`` when deleted)."""
    left = "—" if item.stock is None else f"{item.stock:,}"
    return item.title, format_price(item.revenue_cents, currency), f"{item.units:,}", left


def stock_words(item: StockItem) -> str:
    """``sold out`` or ``2 left``."""
    return "sold out" if item.stock == 0 else f"{item.stock:,} left"


def stock_title(item: StockItem) -> str:
    """The item's title, ``(private)`` after it when others cannot see it."""
    return item.title if item.public else f"{item.title} (private)"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


__all__ = [
    "ChartSeries",
    "Period",
    "points",
    "nice_ticks",
    "revenue_series",
    "short_date",
    "stock_title",
    "stock_words",
    "tick_indexes",
    "tick_label",
    "top_cells",
    "totals_text",
    "units_series",
]
