"""The dashboard's data helpers: chart series, axis ticks and labels, the totals line; and the
server's calendar windows (UTC days, ISO weeks from Monday)."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.commerce.repository import PeriodSales
from backend.commerce.sales_report import DAYS, WEEKS, Window, iso_date
from protocol.messages.sales import CurrencySales, SalesPoint, SalesSummary
from tui.data.sales import (
    Period,
    nice_ticks,
    revenue_series,
    tick_indexes,
    tick_label,
    totals_text,
    units_series,
)


def sales(currency: str, cents: list[int]) -> CurrencySales:
    days = [
        SalesPoint(start=f"2026-11-{n + 1:02d}", revenue_cents=c, units=n, orders=1)
        for n, c in enumerate(cents)
    ]
    return CurrencySales(
        currency=currency,
        revenue_cents=sum(cents),
        units=sum(p.units for p in days),
        orders=len(days),
        days=days,
        weeks=days[:1],
        top_by_revenue=[],
        top_by_units=[],
    )


def summary_of(*entries: CurrencySales) -> SalesSummary:
    return SalesSummary(
        generated_at=0.0,
        today="2026-12-02",
        days=30,
        weeks=12,
        low_stock_threshold=3,
        currencies=list(entries),
        low_stock=[],
        low_stock_count=0,
        sold_out=[],
        sold_out_count=0,
    )


def test_series_draw_whole_currency_units_and_short_dates() -> None:
    eur, jpy = sales("EUR", [1250, 0, 5]), sales("JPY", [1250])
    revenue = revenue_series(eur, Period.DAY)
    assert revenue.title == "Revenue per day (EUR)"
    assert revenue.values == [12.5, 0.0, 0.05]
    assert revenue.labels == ["11-01", "11-02", "11-03"]
    assert revenue_series(jpy, Period.DAY).values == [1250.0]  # no minor unit
    units = units_series(eur, Period.WEEK)
    assert (units.title, units.values) == ("Units per week", [0.0])
    assert not revenue.empty and units.empty


@pytest.mark.parametrize(
    ("top", "rows", "ticks"),
    [
        (0.0, 10, [0, 1]),
        (0.4, 10, [0, 1]),
        (5.0, 12, [0, 1, 2, 3, 4, 5]),
        (57.75, 8, [0, 20, 40, 60]),
        (76.75, 4, [0, 50, 100]),
        (12_345.0, 10, [0, 5000, 10_000, 15_000]),
    ],
)
def test_ticks_are_round_and_whole(top: float, rows: int, ticks: list[int]) -> None:
    assert nice_ticks(top, rows) == ticks


@given(st.floats(min_value=0.001, max_value=1e12), st.integers(min_value=0, max_value=200))
def test_ticks_cover_the_top_with_at_most_one_per_two_rows(top: float, rows: int) -> None:
    ticks = nice_ticks(top, rows)
    assert ticks[0] == 0 and ticks[-1] >= top
    assert all(isinstance(tick, int) for tick in ticks)
    assert len(ticks) - 1 <= max(1, rows // 2) * 2  # a 1-2-5 step overshoots by < 2.5x


def test_tick_labels_stay_short() -> None:
    assert [tick_label(v) for v in (0, 950, 9_999, 25_000, 12_500, 3_000_000, 1_250_000)] == [
        "0",
        "950",
        "9,999",
        "25k",
        "12.5k",
        "3M",
        "1.2M",
    ]


def test_date_ticks_fit_and_always_name_the_last_bar() -> None:
    assert tick_indexes(0, 80) == []
    assert tick_indexes(30, 250) == list(range(30))
    shown = tick_indexes(30, 34)
    assert shown[-1] == 29 and len(shown) <= (34 + 2) // 7
    gaps = {b - a for a, b in zip(shown, shown[1:], strict=False)}
    assert len(gaps) == 1  # evenly spaced


def test_totals_name_the_currency_only_among_several() -> None:
    eur, usd = sales("EUR", [1250, 2500]), sales("USD", [999])
    assert totals_text(summary_of(eur), eur) == (
        "Last 30 days to 2026-12-02 UTC · €37.50 · 1 unit · 2 orders"
    )
    assert totals_text(summary_of(eur, usd), usd).endswith("$9.99 · 0 units · 1 order · USD 2 of 2")


# -- the server's windows ------------------------------------------------------------------------


def test_windows_end_with_the_day_and_iso_week_of_now() -> None:
    now = calendar.timegm((2026, 12, 2, 23, 59, 59))  # a Wednesday
    days = Window.ending_at(DAYS, now, 3)
    assert [iso_date(days.start_of(p)) for p in range(days.first, days.last + 1)] == [
        "2026-11-30",
        "2026-12-01",
        "2026-12-02",
    ]
    assert days.until == calendar.timegm((2026, 12, 3, 0, 0, 0))
    weeks = Window.ending_at(WEEKS, now, 2)
    assert (iso_date(weeks.since), iso_date(weeks.until)) == ("2026-11-23", "2026-12-07")
    series = weeks.series([PeriodSales("EUR", weeks.last, 500, 2, 1)])
    assert [(p.start, p.revenue_cents, p.units) for p in series] == [
        ("2026-11-23", 0, 0),
        ("2026-11-30", 500, 2),
    ]


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_every_week_starts_on_a_monday(now: int) -> None:
    window = Window.ending_at(WEEKS, now, 1)
    start = window.start_of(window.first)
    assert calendar.weekday(*map(int, iso_date(start).split("-"))) == 0
    assert start <= now < window.until
