"""Provides the PostgreSQL implementation of the commerce repositories.

Transactions run concurrently, on several connections and in several server processes, so the
invariants are kept in the database:

- Every change to a user's cart, and every checkout, first takes the cart's advisory lock (held
  to the end of the transaction): two checkouts of one cart, or a checkout and an add, run one
  after the other, and a same-key retry waits for the first attempt and then finds its order.
- Checkout locks the cart's items (in id order, so two checkouts never deadlock over them)
  before approval reads them, so approval judges the stock, price and visibility that the
  guarded stock update then finds, exactly as SQLite's single writer would.

Transactions run at READ COMMITTED: each statement sees what was committed before it began, so
reads made after taking a lock see everything the lock's previous holder wrote.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

import asyncpg

from backend.commerce import report_rows
from backend.commerce.lines import StoredLine
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
from backend.storage.postgres import PostgresDatabase
from protocol.messages.commerce import Order, OrderSummary, Sale

#: The first key of every cart lock (advisory locks with two keys; the second is the user's).
#: Spells "cart"; other locks of the database use other first keys or the one-key form.
_CART_LOCK: Final = 0x63617274
#: A checkout that hits a deadlock (with some other domain's transaction) or loses a race on
#: its checkout key is run again from the start, up to this many times in all. (At READ
#: COMMITTED, PostgreSQL raises no serialization failures to retry.)
_CHECKOUT_ATTEMPTS: Final = 5
#: The unique constraint on (user_id, checkout_key) (see the p0004 migration).
_CHECKOUT_KEY_CONSTRAINT: Final = "orders_checkout_key"

_LINES_SQL = f"{LINE_SELECT} WHERE c.user_id = $1 ORDER BY c.added_at, c.item_id"

_LINE_SQL = f"{LINE_SELECT} WHERE c.user_id = $1 AND c.item_id = $2"

# One row whether or not the item exists: its state (NULLs if not) and the cart around it.
# The item is not locked: a cart line only remembers what was seen, checkout judges it again.
_SLOT_SQL = f"""
SELECT {ITEM_COLUMNS},
       (SELECT quantity FROM cart_lines WHERE user_id = $1 AND item_id = $2) AS in_cart,
       (SELECT count(*) FROM cart_lines WHERE user_id = $1) AS line_count
FROM (SELECT 1) AS one LEFT JOIN items AS i ON i.id = $2
"""

_UPSERT_LINE_SQL = """
INSERT INTO cart_lines (user_id, item_id, quantity, title, price_cents, added_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (user_id, item_id) DO UPDATE SET quantity = excluded.quantity,
    title = excluded.title, price_cents = excluded.price_cents, updated_at = excluded.updated_at
"""

# The rows are locked in the order they are sorted in, which is what keeps two checkouts from
# deadlocking. NO KEY UPDATE is the lock the stock update takes anyway; it lets rows that
# reference items (tags, embeddings) be written meanwhile.
_LOCK_ITEMS_SQL = """
SELECT id FROM items
WHERE id IN (SELECT item_id FROM cart_lines WHERE user_id = $1)
ORDER BY id
FOR NO KEY UPDATE
"""

# Every line in one statement; the guard repeats approval's checks, so stock never goes below
# zero nor is sold at a price or visibility other than the approved one. A line whose guard
# fails is missing from what it returns.
_TAKE_STOCK_SQL = """
UPDATE items AS i SET stock = i.stock - t.quantity, updated_at = $4
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(id, quantity, price_cents)
WHERE i.id = t.id AND i.stock >= t.quantity AND i.public AND i.price_cents = t.price_cents
RETURNING i.id, i.stock
"""

_SUMMARIES_SQL = """
SELECT o.id, o.created_at, o.total_cents, o.currency,
       (array_agg(l.title ORDER BY l.id))[1] AS first_title,
       count(*) AS line_count, sum(l.quantity) AS units
FROM orders AS o JOIN order_lines AS l ON l.order_id = o.id
WHERE o.user_id = $1 AND o.id < $2
GROUP BY o.id
ORDER BY o.id DESC
LIMIT $3
"""

# Line ids are handed out as checkouts insert, not as they commit, so a sale committed late may
# land below a batch already sent; positions still never repeat or skip a committed row.
_SALES_SQL = f"{SALE_SELECT} WHERE l.seller_id = $1 AND l.id < $2 ORDER BY l.id DESC LIMIT $3"

_INSERT_ORDER_LINE_SQL = (
    f"INSERT INTO order_lines ({ORDER_LINE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)

_ORDER_SQL = f"{ORDER_SELECT} WHERE id = $1"

_ORDER_LINES_SQL = f"{ORDER_LINE_SELECT} WHERE l.order_id = $1 ORDER BY l.id"

# The sales report's queries, numbered in the order their methods pass the arguments.
_SALES_BY_PERIOD_SQL = report_rows.SALES_BY_PERIOD.format(
    seller="$1", since="$2", until="$3", period="floor((l.sold_at + $4) / $5)::bigint"
)
_TOP_ITEMS_SQL = report_rows.TOP_ITEMS.format(seller="$1", since="$2", until="$3", limit="$4")
_STOCK_LEVELS_SQL = report_rows.STOCK_LEVELS.format(seller="$1", threshold="$2", limit="$3")


class PostgresCommerceRepository:
    """:class:`~backend.commerce.repository.CommerceRepository` over PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def lines(self, user_id: int) -> list[StoredLine]:
        # One statement, so lines and items come from the same committed snapshot.
        return [line_from_row(row) for row in await self._db.fetchall(_LINES_SQL, user_id)]

    async def add(
        self, user_id: int, item_id: int, decide: AddDecision, *, now: float
    ) -> list[StoredLine]:
        async with self._db.transaction() as conn:
            await _lock_cart(conn, user_id)
            row = await conn.fetchrow(_SLOT_SQL, user_id, item_id)
            assert row is not None  # the query always yields its one row
            line = decide(slot_from_row(row))
            await conn.execute(
                _UPSERT_LINE_SQL, user_id, item_id, line.quantity, line.title, line.price_cents, now
            )
            return await _lines(conn, user_id)

    async def set_quantity(
        self, user_id: int, item_id: int, decide: QuantityDecision, *, now: float
    ) -> list[StoredLine]:
        async with self._db.transaction() as conn:
            await _lock_cart(conn, user_id)
            row = await conn.fetchrow(_LINE_SQL, user_id, item_id)
            quantity = decide(line_from_row(row) if row is not None else None)
            await conn.execute(
                "UPDATE cart_lines SET quantity = $1, updated_at = $2"
                " WHERE user_id = $3 AND item_id = $4",
                quantity,
                now,
                user_id,
                item_id,
            )
            return await _lines(conn, user_id)

    async def remove(self, user_id: int, item_id: int) -> list[StoredLine] | None:
        async with self._db.transaction() as conn:
            await _lock_cart(conn, user_id)
            removed = await conn.fetchval(
                "DELETE FROM cart_lines WHERE user_id = $1 AND item_id = $2 RETURNING item_id",
                user_id,
                item_id,
            )
            if removed is None:
                return None
            return await _lines(conn, user_id)

    async def clear(self, user_id: int) -> None:
        async with self._db.transaction() as conn:
            await _lock_cart(conn, user_id)
            await conn.execute("DELETE FROM cart_lines WHERE user_id = $1", user_id)

    async def checkout(
        self,
        user_id: int,
        checkout_key: str,
        approve: Approval,
        *,
        currency: str,
        now: float,
    ) -> CheckoutResult:
        attempt = 1
        while True:
            try:
                return await self._checkout(user_id, checkout_key, approve, currency, now)
            except (asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError) as exc:
                if attempt == _CHECKOUT_ATTEMPTS or not _worth_retrying(exc):
                    raise
            attempt += 1

    async def _checkout(
        self, user_id: int, checkout_key: str, approve: Approval, currency: str, now: float
    ) -> CheckoutResult:
        async with self._db.transaction() as conn:
            await _lock_cart(conn, user_id)
            order_id: int | None = await conn.fetchval(
                "SELECT id FROM orders WHERE user_id = $1 AND checkout_key = $2",
                user_id,
                checkout_key,
            )
            if order_id is not None:
                return CheckoutResult(await _read_order(conn, order_id), True, ())
            await conn.execute(_LOCK_ITEMS_SQL, user_id)
            lines = await _lines(conn, user_id)
            total = approve(lines)
            changes = await _take_stock(conn, lines, now)
            order_id = await conn.fetchval(
                "INSERT INTO orders (user_id, checkout_key, total_cents, currency, created_at)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                user_id,
                checkout_key,
                total,
                currency,
                now,
            )
            assert order_id is not None  # RETURNING of an INSERT without ON CONFLICT
            # One statement per line, in cart order, so line ids follow the cart.
            await conn.executemany(
                _INSERT_ORDER_LINE_SQL,
                order_line_values(order_id, lines, changes, now),
            )
            await conn.execute("DELETE FROM cart_lines WHERE user_id = $1", user_id)
            return CheckoutResult(await _read_order(conn, order_id), False, changes)

    async def orders(
        self, user_id: int, *, below: int | None, limit: int
    ) -> list[Keyed[OrderSummary]]:
        rows = await self._db.fetchall(_SUMMARIES_SQL, user_id, start_below(below), limit)
        return [keyed_summary(row) for row in rows]

    async def sales(self, seller_id: int, *, below: int | None, limit: int) -> list[Keyed[Sale]]:
        rows = await self._db.fetchall(_SALES_SQL, seller_id, start_below(below), limit)
        return [keyed_sale(row) for row in rows]

    async def order(self, order_id: int) -> BuyerOrder | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_ORDER_SQL, order_id)
            if row is None:
                return None
            # Orders never change after checkout: reading the lines separately is safe.
            lines = await conn.fetch(_ORDER_LINES_SQL, order_id)
        return BuyerOrder(int(row["user_id"]), order_from_rows(row, lines))

    async def sales_by_period(
        self, seller_id: int, periods: Periods, *, since: float, until: float
    ) -> list[PeriodSales]:
        rows = await self._db.fetchall(
            _SALES_BY_PERIOD_SQL,
            seller_id,
            since,
            until,
            float(periods.shift),
            float(periods.width),
        )
        return [report_rows.period_sales(row) for row in rows]

    async def top_items(
        self, seller_id: int, *, since: float, until: float, limit: int
    ) -> list[ItemSales]:
        rows = await self._db.fetchall(_TOP_ITEMS_SQL, seller_id, since, until, limit)
        return [report_rows.item_sales(row) for row in rows]

    async def stock_levels(self, seller_id: int, *, threshold: int, limit: int) -> StockLevels:
        rows = await self._db.fetchall(_STOCK_LEVELS_SQL, seller_id, threshold, limit)
        return report_rows.stock_levels(rows)


def _worth_retrying(exc: asyncpg.PostgresError) -> bool:
    """Whether a checkout that failed with ``exc`` may succeed (or replay) if run again."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        # Only a writer that skipped the cart lock could have used the key meanwhile; run
        # again, the lookup finds its order.
        return bool(exc.constraint_name == _CHECKOUT_KEY_CONSTRAINT)
    return isinstance(exc, asyncpg.DeadlockDetectedError)


async def _lock_cart(conn: asyncpg.Connection[Any], user_id: int) -> None:
    """Take the user's cart lock until the end of ``conn``'s transaction."""
    # The second key is 32 bits: ids that share their low 31 bits share a lock, which only
    # makes those two carts wait for each other.
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _CART_LOCK, user_id & 0x7FFFFFFF)


async def _lines(conn: asyncpg.Connection[Any], user_id: int) -> list[StoredLine]:
    """A user's cart lines read through ``conn``, inside its transaction."""
    return [line_from_row(row) for row in await conn.fetch(_LINES_SQL, user_id)]


async def _take_stock(
    conn: asyncpg.Connection[Any], lines: list[StoredLine], now: float
) -> tuple[StockChange, ...]:
    """Take every line's units with one guarded update.

    Raises:
        StockGuardError: naming every line whose guard failed.
    """
    taking = [(line, item) for line in lines if (item := line.item) is not None]
    rows = await conn.fetch(
        _TAKE_STOCK_SQL,
        [line.item_id for line, _ in taking],
        [line.quantity for line, _ in taking],
        [item.price_cents for _, item in taking],
        now,
    )
    left = {int(row["id"]): int(row["stock"]) for row in rows}
    short = tuple(line for line in lines if line.item_id not in left)
    if short:
        raise StockGuardError(short)
    return tuple(
        StockChange(line.item_id, replace(item, stock=left[line.item_id])) for line, item in taking
    )


async def _read_order(conn: asyncpg.Connection[Any], order_id: int) -> Order:
    """The order ``conn``'s transaction placed or found (so it exists)."""
    row = await conn.fetchrow(_ORDER_SQL, order_id)
    assert row is not None
    return order_from_rows(row, await conn.fetch(_ORDER_LINES_SQL, order_id))
