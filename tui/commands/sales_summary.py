"""Provides ``pixmart sales --summary``: the seller's dashboard as text, JSON or CSV.

The figures come from the server (:func:`protocol.commerce_client.sales_summary`); this module
only prints them. ``--json`` prints the :class:`~protocol.messages.sales.SalesSummary` as one
JSON object; ``--csv`` prints one table whose columns are :data:`CSV_COLUMNS`, one row per day,
week, top item and stock item (the ``section`` column says which). Both are documented in the
README and keep their names: scripts rely on them.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from typing import Final

from protocol import commerce_client as shop
from protocol.messages.sales import (
    MAX_DAYS,
    MAX_TOP,
    MAX_WEEKS,
    CurrencySales,
    SalesPoint,
    SalesSummary,
    StockItem,
    TopItem,
)
from protocol.money import format_amount, format_price
from tui.commands.context import CommandContext, CommandFailed, print_json, wants_json

#: The columns of ``--csv``, in order. Money is given twice: exact minor units
#: (``revenue_minor``) and the plain amount in the currency (``revenue``, e.g. ``12.50``).
CSV_COLUMNS: Final = (
    "section",
    "currency",
    "start",
    "rank",
    "item_id",
    "title",
    "revenue_minor",
    "revenue",
    "units",
    "orders",
    "stock",
)

#: A CSV row: a value per column of :data:`CSV_COLUMNS` that applies, ``""`` elsewhere.
CsvRow = dict[str, str | int]


def add_summary_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--summary`` and its options to the ``sales`` parser."""
    parser.add_argument(
        "--summary",
        action="store_true",
        help="revenue and units per day and week, top items and low stock, instead of the list",
    )
    parser.add_argument(
        "--csv", action="store_true", help="with --summary: print one CSV table (see README)"
    )
    parser.add_argument(
        "--days", type=int, default=30, metavar="N", help="with --summary: days to cover (30)"
    )
    parser.add_argument(
        "--weeks", type=int, default=12, metavar="N", help="with --summary: weeks to cover (12)"
    )
    parser.add_argument("--top", type=int, default=5, metavar="N", help="top items to show (5)")
    parser.add_argument(
        "--low-stock",
        type=int,
        default=3,
        metavar="N",
        help="items with N units or fewer are low on stock (3)",
    )


async def show_summary(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Print the caller's sales summary as text, JSON or CSV."""
    as_json, as_csv = wants_json(args), args.csv
    if as_json and as_csv:
        raise CommandFailed("Choose one of --json and --csv")
    _check_range("--days", args.days, 1, MAX_DAYS)
    _check_range("--weeks", args.weeks, 1, MAX_WEEKS)
    _check_range("--top", args.top, 1, MAX_TOP)
    _check_range("--low-stock", args.low_stock, 0, 10**9)
    async with ctx.logged_in() as session:
        summary = await shop.sales_summary(
            session, days=args.days, weeks=args.weeks, top=args.top, low_stock=args.low_stock
        )
    if as_json:
        print_json(summary)
    elif as_csv:
        write_csv(summary)
    else:
        print("\n".join(summary_lines(summary)))
    return 0


def _check_range(option: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise CommandFailed(f"{option} must be from {low} to {high}")


# -- CSV ---------------------------------------------------------------------------------------


def write_csv(summary: SalesSummary) -> None:
    """Print ``summary`` as one CSV table with the header :data:`CSV_COLUMNS`."""
    writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(summary))


def csv_rows(summary: SalesSummary) -> Iterator[CsvRow]:
    """The rows of the CSV table: per currency its days, weeks and top items, then the stock."""
    for sales in summary.currencies:
        for section, points in (("day", sales.days), ("week", sales.weeks)):
            for point in points:
                yield _point_row(section, sales.currency, point)
        for section, items in (
            ("top_revenue", sales.top_by_revenue),
            ("top_units", sales.top_by_units),
        ):
            for rank, item in enumerate(items, start=1):
                yield _top_row(section, sales.currency, rank, item)
    for section, stock_items in (("low_stock", summary.low_stock), ("sold_out", summary.sold_out)):
        for stock_item in stock_items:
            yield _stock_row(section, stock_item)


def _point_row(section: str, currency: str, point: SalesPoint) -> CsvRow:
    return {
        "section": section,
        "currency": currency,
        "start": point.start,
        "revenue_minor": point.revenue_cents,
        "revenue": format_amount(point.revenue_cents, currency),
        "units": point.units,
        "orders": point.orders,
    }


def _top_row(section: str, currency: str, rank: int, item: TopItem) -> CsvRow:
    return {
        "section": section,
        "currency": currency,
        "rank": rank,
        "item_id": item.item_id,
        "title": item.title,
        "revenue_minor": item.revenue_cents,
        "revenue": format_amount(item.revenue_cents, currency),
        "units": item.units,
        "stock": "" if item.stock is None else item.stock,
    }


def _stock_row(section: str, item: StockItem) -> CsvRow:
    return {"section": section, "item_id": item.item_id, "title": item.title, "stock": item.stock}


# -- text ----------------------------------------------------------------------------------------


def summary_lines(summary: SalesSummary) -> Iterator[str]:
    """The summary for a person: per currency totals, weeks and top items, then the stock."""
    yield f"Sales of the last {summary.days} days to {summary.today} (UTC)"
    for sales in summary.currencies:
        yield ""
        yield from _currency_lines(sales)
    yield ""
    yield from _stock_lines(summary)


def _currency_lines(sales: CurrencySales) -> Iterator[str]:
    currency = sales.currency
    revenue = format_price(sales.revenue_cents, currency)
    units, orders = _count(sales.units, "unit"), _count(sales.orders, "order")
    yield f"{currency}: {revenue} from {units} in {orders}"
    yield f"  Weeks (from Monday)  {'Revenue':>14} {'Units':>7}"
    for point in sales.weeks:
        week_revenue = format_price(point.revenue_cents, currency)
        yield f"  {point.start:<20} {week_revenue:>14} {point.units:>7,}"
    for heading, items in (("by revenue", sales.top_by_revenue), ("by units", sales.top_by_units)):
        if not items:
            continue
        yield f"  Top {heading}:"
        for rank, item in enumerate(items, start=1):
            left = "deleted" if item.stock is None else f"{item.stock:,} left"
            yield (
                f"  {rank:>3}. #{item.item_id:<6} {item.title[:32]:<32}"
                f" {format_price(item.revenue_cents, currency):>14} {item.units:>7,}  ({left})"
            )


def _stock_lines(summary: SalesSummary) -> Iterator[str]:
    for heading, items, count in (
        (
            f"Low on stock (1 to {summary.low_stock_threshold})",
            summary.low_stock,
            summary.low_stock_count,
        ),
        ("Sold out", summary.sold_out, summary.sold_out_count),
    ):
        yield f"{heading}: {count:,}" if count else f"{heading}: none"
        for item in items:
            private = "  (private)" if not item.public else ""
            yield f"  #{item.item_id:<6} {item.title[:40]:<40} {item.stock:>5,} left{private}"
        if count > len(items):
            yield f"  … and {count - len(items):,} more"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
