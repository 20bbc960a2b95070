"""Provides the SQLite implementation of the commerce repositories.

SQLite has one writer: every change runs in a write transaction of the database's serialised
writer (``BEGIN IMMEDIATE`` under its lock), so what a transaction read still holds when it
writes. Reads that must see the transaction's own writes (the cart after a change, the order
just placed) go through the writer: a reader connection may still serve an older snapshot.
"""

from __future__ import annotations

from dataclasses import replace

import aiosqlite

from backend.commerce import report_rows
from backend.commerce.lines import ItemState, StoredLine
from backend.commerce.repository import (
    AddDecision,
    Approval,
    BuyerOrder,
    CheckoutResult,
    ItemSales,
    Keyed,
    Periods,
    PeriodSales,
    QuantityDecision,
    StockChange,
    StockGuardError,
    StockLevels,
)
from backend.commerce.rows import (
    ITEM_COLUMNS,
    LINE_SELECT,
    ORDER_LINE_COLUMNS,
    ORDER_LINE_SELECT,
    ORDER_SELECT,
    SALE_SELECT,
    keyed_sale,
    keyed_summary,
    line_from_row,
    order_from_rows,
    order_line_values,
    slot_from_row,
    start_below,
)
from backend.storage.database import Database
from protocol.messages.commerce import Order, OrderSummary, Sale

_LINES_SQL = f"{LINE_SELECT} WHERE c.user_id = ? ORDER BY c.added_at, c.item_id"

_LINE_SQL = f"{LINE_SELECT} WHERE c.user_id = ? AND c.item_id = ?"

# One row whether or not the item exists: its state (NULLs if not) and the cart around it.
_SLOT_SQL = f"""
SELECT {ITEM_COLUMNS},
       (SELECT quantity FROM cart_lines WHERE user_id = :user AND item_id = :item) AS in_cart,
       (SELECT count(*) FROM cart_lines WHERE user_id = :user) AS line_count
FROM (SELECT 1) LEFT JOIN items AS i ON i.id = :item
"""

_UPSERT_LINE_SQL = """
INSERT INTO cart_lines (user_id, item_id, quantity, title, price_cents, added_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id, item_id) DO UPDATE SET quantity = excluded.quantity,
    title = excluded.title, price_cents = excluded.price_cents, updated_at = excluded.updated_at
"""

# The guard repeats approval's checks in the statement itself, so stock can never go below zero
# nor be sold at a price or visibility other than the approved one; rowcount says if it held.
_TAKE_STOCK_SQL = """
UPDATE items SET stock = stock - ?, updated_at = ?
WHERE id = ? AND stock >= ? AND public = 1 AND price_cents = ?
"""

# With min(), SQLite takes bare columns (first_title) from the row holding the minimum, so this
# names each order by its first line in one pass.
_SUMMARIES_SQL = """
SELECT o.id, o.created_at, o.total_cents, o.currency,
       l.title AS first_title, min(l.id) AS first_line,
       count(l.id) AS line_count, sum(l.quantity) AS units
FROM orders AS o JOIN order_lines AS l ON l.order_id = o.id
WHERE o.user_id = ? AND o.id < ?
GROUP BY o.id
ORDER BY o.id DESC
LIMIT ?
"""

_SALES_SQL = f"{SALE_SELECT} WHERE l.seller_id = ? AND l.id < ? ORDER BY l.id DESC LIMIT ?"

_INSERT_ORDER_LINE_SQL = (
    f"INSERT INTO order_lines ({ORDER_LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_ORDER_SQL = f"{ORDER_SELECT} WHERE id = ?"

_ORDER_LINES_SQL = f"{ORDER_LINE_SELECT} WHERE l.order_id = ? ORDER BY l.id"

# The sales report's queries with named parameters.
_NAMES = {name: f":{name}" for name in ("seller", "since", "until", "limit", "threshold")}
# CAST truncates towards zero: the floor, for the positive times orders carry.
_SALES_BY_PERIOD_SQL = report_rows.SALES_BY_PERIOD.format(
    period="CAST((l.sold_at + :shift) / :width AS INTEGER)", **_NAMES
)
_TOP_ITEMS_SQL = report_rows.TOP_ITEMS.format(**_NAMES)
_STOCK_LEVELS_SQL = report_rows.STOCK_LEVELS.format(**_NAMES)


class SqliteCommerceRepository:
    """:class:`~backend.commerce.repository.CommerceRepository` over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def lines(self, user_id: int) -> list[StoredLine]:
        # One statement, so lines and items come from the same committed snapshot.
        return [line_from_row(row) for row in await self._db.fetchall(_LINES_SQL, (user_id,))]

    async def add(
        self, user_id: int, item_id: int, decide: AddDecision, *, now: float
    ) -> list[StoredLine]:
        async with self._db.transaction() as conn:
            rows = await conn.execute_fetchall(_SLOT_SQL, {"user": user_id, "item": item_id})
            row = next(iter(rows))
            line = decide(slot_from_row(row))
            await conn.execute(
                _UPSERT_LINE_SQL,
                (user_id, item_id, line.quantity, line.title, line.price_cents, now, now),
            )
            return await _lines(conn, user_id)

    async def set_quantity(
        self, user_id: int, item_id: int, decide: QuantityDecision, *, now: float
    ) -> list[StoredLine]:
        async with self._db.transaction() as conn:
            rows = list(await conn.execute_fetchall(_LINE_SQL, (user_id, item_id)))
            quantity = decide(line_from_row(rows[0]) if rows else None)
            await conn.execute(
                "UPDATE cart_lines SET quantity = ?, updated_at = ?"
                " WHERE user_id = ? AND item_id = ?",
                (quantity, now, user_id, item_id),
            )
            return await _lines(conn, user_id)

    async def remove(self, user_id: int, item_id: int) -> list[StoredLine] | None:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM cart_lines WHERE user_id = ? AND item_id = ?", (user_id, item_id)
            )
            if cursor.rowcount == 0:
                return None
            return await _lines(conn, user_id)

    async def clear(self, user_id: int) -> None:
        await self._db.execute("DELETE FROM cart_lines WHERE user_id = ?", (user_id,))

    async def checkout(
        self,
        user_id: int,
        checkout_key: str,
        approve: Approval,
        *,
        currency: str,
        now: float,
    ) -> CheckoutResult:
        async with self._db.transaction() as conn:
            order_id = await _existing_order(conn, user_id, checkout_key)
            if order_id is not None:
                return CheckoutResult(await _read_order(conn, order_id), True, ())
            lines = await _lines(conn, user_id)
            total = approve(lines)
            changes = await _take_stock(conn, lines, now)
            cursor = await conn.execute(
                "INSERT INTO orders (user_id, checkout_key, total_cents, currency, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (user_id, checkout_key, total, currency, now),
            )
            order_id = cursor.lastrowid
            assert order_id is not None  # an INSERT into a rowid table always sets it
            await conn.executemany(
                _INSERT_ORDER_LINE_SQL,
                order_line_values(order_id, lines, changes, now),
            )
            await conn.execute("DELETE FROM cart_lines WHERE user_id = ?", (user_id,))
            return CheckoutResult(await _read_order(conn, order_id), False, changes)

    async def orders(
        self, user_id: int, *, below: int | None, limit: int
    ) -> list[Keyed[OrderSummary]]:
        rows = await self._db.fetchall(_SUMMARIES_SQL, (user_id, start_below(below), limit))
        return [keyed_summary(row) for row in rows]

    async def sales(self, seller_id: int, *, below: int | None, limit: int) -> list[Keyed[Sale]]:
        rows = await self._db.fetchall(_SALES_SQL, (seller_id, start_below(below), limit))
        return [keyed_sale(row) for row in rows]

    async def order(self, order_id: int) -> BuyerOrder | None:
        row = await self._db.fetchone(_ORDER_SQL, (order_id,))
        if row is None:
            return None
        # Orders never change after checkout: reading the lines separately is safe.
        lines = await self._db.fetchall(_ORDER_LINES_SQL, (order_id,))
        return BuyerOrder(int(row["user_id"]), order_from_rows(row, lines))

    async def sales_by_period(
        self, seller_id: int, periods: Periods, *, since: float, until: float
    ) -> list[PeriodSales]:
        params = {
            "seller": seller_id,
            "since": since,
            "until": until,
            "shift": periods.shift,
            "width": float(periods.width),  # a float, so the division is not an integer one
        }
        rows = await self._db.fetchall(_SALES_BY_PERIOD_SQL, params)
        return [report_rows.period_sales(row) for row in rows]

    async def top_items(
        self, seller_id: int, *, since: float, until: float, limit: int
    ) -> list[ItemSales]:
        params = {"seller": seller_id, "since": since, "until": until, "limit": limit}
        rows = await self._db.fetchall(_TOP_ITEMS_SQL, params)
        return [report_rows.item_sales(row) for row in rows]

    async def stock_levels(self, seller_id: int, *, threshold: int, limit: int) -> StockLevels:
        params = {"seller": seller_id, "threshold": threshold, "limit": limit}
        return report_rows.stock_levels(await self._db.fetchall(_STOCK_LEVELS_SQL, params))


async def _lines(conn: aiosqlite.Connection, user_id: int) -> list[StoredLine]:
    """A user's cart lines read through ``conn``, inside its write transaction."""
    # One call into the database thread: inside the write lock every round trip counts.
    return [line_from_row(row) for row in await conn.execute_fetchall(_LINES_SQL, (user_id,))]


async def _existing_order(conn: aiosqlite.Connection, user_id: int, key: str) -> int | None:
    rows = list(
        await conn.execute_fetchall(
            "SELECT id FROM orders WHERE user_id = ? AND checkout_key = ?", (user_id, key)
        )
    )
    return int(rows[0]["id"]) if rows else None


async def _take_stock(
    conn: aiosqlite.Connection, lines: list[StoredLine], now: float
) -> tuple[StockChange, ...]:
    """Take every line's units, each with a guarded update.

    Raises:
        StockGuardError: naming every line whose guard failed.
    """
    changes: list[StockChange] = []
    short: list[StoredLine] = []
    for line in lines:
        item = line.item
        if item is not None and await _take(conn, line, item, now):
            # The writer is serialised: the stock approval read is the stock the update found.
            after = replace(item, stock=item.stock - line.quantity)
            changes.append(StockChange(line.item_id, after))
        else:
            short.append(line)
    if short:
        raise StockGuardError(tuple(short))
    return tuple(changes)


async def _take(conn: aiosqlite.Connection, line: StoredLine, item: ItemState, now: float) -> bool:
    cursor = await conn.execute(
        _TAKE_STOCK_SQL, (line.quantity, now, line.item_id, line.quantity, item.price_cents)
    )
    return cursor.rowcount == 1


async def _read_order(conn: aiosqlite.Connection, order_id: int) -> Order:
    """The order ``conn``'s transaction placed or found (so it exists)."""
    rows = list(await conn.execute_fetchall(_ORDER_SQL, (order_id,)))
    return order_from_rows(rows[0], await conn.execute_fetchall(_ORDER_LINES_SQL, (order_id,)))
