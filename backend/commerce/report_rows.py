"""Provides the sales report's queries, in either engine's placeholders, and readers of their rows.

The queries are the same on SQLite and PostgreSQL but for two things, so they are written once
as templates: the placeholders (each engine formats ``{seller}``, ``{since}``, ... with its own:
``:seller`` for SQLite's named parameters, ``$1`` for asyncpg's) and the expression that turns
a time into its period (``{period}``: SQLite has no ``floor`` without its math extension, and
``CAST`` truncates, which is the floor for the positive times orders carry).

Every query aggregates in the database (``GROUP BY`` and window functions): however many orders
a seller has, the server receives one row per period, per item in a top list, per stock item.
Revenue is the sum of ``quantity * unit_price_cents``, integers on both engines (PostgreSQL
answers ``sum`` of BIGINT as NUMERIC, which is read back exactly with ``int``).
"""

from __future__ import annotations

from collections.abc import Sequence

from backend.commerce.repository import ItemSales, PeriodSales, StockLevels
from backend.commerce.rows import Row
from protocol.messages.sales import StockItem

#: The seller's order lines sold in ``[since, until)``, with their orders. ``sold_at`` is the
#: order's ``created_at`` copied to the line, so the index on (seller_id, sold_at) reads just
#: the window's lines.
_SOLD = """
FROM order_lines AS l JOIN orders AS o ON o.id = l.order_id
WHERE l.seller_id = {seller} AND l.sold_at >= {since} AND l.sold_at < {until}
"""

#: Revenue, units and orders per currency and period (``{period}``: the period of ``o``).
SALES_BY_PERIOD = f"""
SELECT o.currency, {{period}} AS period,
       sum(l.quantity * l.unit_price_cents) AS revenue, sum(l.quantity) AS units,
       count(DISTINCT o.id) AS orders
{_SOLD}
GROUP BY o.currency, period
"""

#: Per currency, the items among the ``{limit}`` best by revenue or by units, each named by
#: the title of its latest sale and with its stock now (NULL when deleted).
TOP_ITEMS = f"""
WITH sold AS (
    SELECT o.currency, l.item_id, sum(l.quantity * l.unit_price_cents) AS revenue,
           sum(l.quantity) AS units, max(l.id) AS last_line
    {_SOLD}
    GROUP BY o.currency, l.item_id
), ranked AS (
    SELECT currency, item_id, revenue, units, last_line,
           row_number() OVER (PARTITION BY currency
                              ORDER BY revenue DESC, units DESC, item_id) AS by_revenue,
           row_number() OVER (PARTITION BY currency
                              ORDER BY units DESC, revenue DESC, item_id) AS by_units
    FROM sold
)
SELECT r.currency, r.item_id, r.revenue, r.units, r.by_revenue, r.by_units,
       t.title, i.stock
FROM ranked AS r
JOIN order_lines AS t ON t.id = r.last_line
LEFT JOIN items AS i ON i.id = r.item_id AND i.owner_id = {{seller}}
WHERE r.by_revenue <= {{limit}} OR r.by_units <= {{limit}}
ORDER BY r.currency, r.by_revenue
"""

#: The seller's items with at most ``{threshold}`` units, the first ``{limit}`` of the sold-out
#: ones and of the others, each row with how many of its kind there are (one statement, so the
#: lists and counts agree).
STOCK_LEVELS = """
SELECT id, title, stock, price_cents, public, kind_count
FROM (
    SELECT id, title, stock, price_cents, public,
           row_number() OVER (PARTITION BY stock = 0 ORDER BY stock, id) AS place,
           count(*) OVER (PARTITION BY stock = 0) AS kind_count
    FROM items
    WHERE owner_id = {seller} AND stock <= {threshold}
) AS few
WHERE place <= {limit}
ORDER BY stock, id
"""


def period_sales(row: Row) -> PeriodSales:
    """A row of :data:`SALES_BY_PERIOD`."""
    return PeriodSales(
        currency=str(row["currency"]),
        period=int(row["period"]),
        revenue_cents=int(row["revenue"]),
        units=int(row["units"]),
        orders=int(row["orders"]),
    )


def item_sales(row: Row) -> ItemSales:
    """A row of :data:`TOP_ITEMS`."""
    stock = row["stock"]
    return ItemSales(
        currency=str(row["currency"]),
        item_id=int(row["item_id"]),
        title=str(row["title"]),
        revenue_cents=int(row["revenue"]),
        units=int(row["units"]),
        stock=None if stock is None else int(stock),
        by_revenue=int(row["by_revenue"]),
        by_units=int(row["by_units"]),
    )


def stock_levels(rows: Sequence[Row]) -> StockLevels:
    """The rows of :data:`STOCK_LEVELS`, sorted into low and sold out."""
    low: list[StockItem] = []
    sold_out: list[StockItem] = []
    counts = {True: 0, False: 0}
    for row in rows:
        item = StockItem(
            item_id=int(row["id"]),
            title=str(row["title"]),
            stock=int(row["stock"]),
            price_cents=int(row["price_cents"]),
            public=bool(row["public"]),
        )
        empty = item.stock == 0
        (sold_out if empty else low).append(item)
        counts[empty] = int(row["kind_count"])
    return StockLevels(
        low=low, low_count=counts[False], sold_out=sold_out, sold_out_count=counts[True]
    )
