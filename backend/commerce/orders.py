"""Provides :class:`OrderBook`: a buyer's orders, one order with its lines, a seller's sales.

Orders and order lines are never changed after checkout, and their ids grow with time (writes are
serialised), so "newest first" is ``ORDER BY id DESC`` and a batch continues strictly below the
last id sent: keyset batches that nothing placed meanwhile can shift.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import aiosqlite

from backend.accounts.service import Principal
from backend.catalogue.cursors import CursorSigner, Position, cursor_binding
from backend.storage.database import Database
from protocol.errors import BadRequest, NotFound
from protocol.messages.commerce import Order, OrderLine, OrderSummary, Sale

#: Cursor scopes (see :func:`~backend.catalogue.cursors.cursor_binding`).
ORDERS_SCOPE: Final = "commerce.orders"
SALES_SCOPE: Final = "commerce.sales"

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

_SALES_SQL = """
SELECT l.id, l.order_id, l.item_id, l.title, l.quantity, l.unit_price_cents,
       o.currency, o.created_at, u.username AS buyer_name
FROM order_lines AS l
JOIN orders AS o ON o.id = l.order_id
JOIN users AS u ON u.id = o.user_id
WHERE l.seller_id = ? AND l.id < ?
ORDER BY l.id DESC
LIMIT ?
"""

_ORDER_SQL = "SELECT id, user_id, created_at, total_cents, currency FROM orders WHERE id = ?"

_ORDER_LINES_SQL = """
SELECT l.item_id, l.title, l.quantity, l.unit_price_cents, l.seller_id, u.username AS seller_name
FROM order_lines AS l JOIN users AS u ON u.id = l.seller_id
WHERE l.order_id = ?
ORDER BY l.id
"""

#: Above every id SQLite can hand out, so a first batch starts at the newest row.
_NO_POSITION: Final = 2**63 - 1


class OrderBook:
    """Reads orders and sales, in batches with signed keyset cursors.

    Args:
        db: The database.
        signer: Seals and opens listing cursors.
        batch_default: Rows per batch when the client does not say.
        batch_max: The most rows a client may ask for in one batch.
    """

    def __init__(
        self, db: Database, signer: CursorSigner, *, batch_default: int, batch_max: int
    ) -> None:
        self._db = db
        self._signer = signer
        self._batch_default = batch_default
        self._batch_max = batch_max

    async def orders(
        self, user_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        """A batch of the user's orders, newest first, and the cursor of the next batch.

        Raises:
            BadRequest: ``limit`` is above the maximum, or the cursor is not one of this
                listing's for this user.
        """
        binding = cursor_binding(ORDERS_SCOPE, user_id)
        rows, next_cursor = await self._batch(_SUMMARIES_SQL, user_id, binding, limit, cursor)
        return [_summary(row) for row in rows], next_cursor

    async def sales(
        self, seller_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Sale], str | None]:
        """A batch of sales of the seller's items, newest first, and the next batch's cursor.

        Raises:
            BadRequest: as for :meth:`orders`.
        """
        binding = cursor_binding(SALES_SCOPE, seller_id)
        rows, next_cursor = await self._batch(_SALES_SQL, seller_id, binding, limit, cursor)
        return [_sale(row) for row in rows], next_cursor

    async def order(self, principal: Principal, order_id: int) -> Order:
        """One order with its lines; only its buyer (or an admin) may read it.

        Raises:
            NotFound: no such order, or someone else's (the same answer for both).
        """
        row = await self._db.fetchone(_ORDER_SQL, (order_id,))
        if row is None or (int(row["user_id"]) != principal.user_id and not principal.is_admin):
            raise NotFound(f"You have no order {order_id}")
        lines = await self._db.fetchall(_ORDER_LINES_SQL, (order_id,))
        return _order(row, lines)

    async def _batch(
        self, sql: str, owner_id: int, binding: bytes, limit: int | None, cursor: str | None
    ) -> tuple[list[Any], str | None]:
        size = self._batch_size(limit)
        below = _NO_POSITION if cursor is None else _last_id(self._signer.open(cursor, binding))
        # One row more than asked says whether another batch exists, so the last batch carries
        # no cursor and the client never asks for an empty one.
        rows = await self._db.fetchall(sql, (owner_id, below, size + 1))
        if len(rows) <= size:
            return rows, None
        rows = rows[:size]
        return rows, self._signer.seal(binding, [int(rows[-1]["id"])])

    def _batch_size(self, limit: int | None) -> int:
        if limit is None:
            return self._batch_default
        if limit > self._batch_max:
            raise BadRequest(f"A batch has at most {self._batch_max} rows")
        return limit


async def read_order(conn: aiosqlite.Connection, order_id: int) -> Order | None:
    """An order with its lines read through ``conn``, or ``None``; no access checks.

    Checkout reads the order it placed inside its own write transaction: a reader connection
    may still be serving a statement that began before the commit, and would not see it.
    """
    rows = list(await conn.execute_fetchall(_ORDER_SQL, (order_id,)))
    if not rows:
        return None
    return _order(rows[0], await conn.execute_fetchall(_ORDER_LINES_SQL, (order_id,)))


def _order(row: Any, lines: Iterable[Any]) -> Order:
    return Order(
        id=int(row["id"]),
        created_at=float(row["created_at"]),
        total_cents=int(row["total_cents"]),
        currency=str(row["currency"]),
        lines=[_order_line(line) for line in lines],
    )


def _last_id(position: Position) -> int:
    # The MAC vouches for the bytes, not for the shape: check it anyway, cheaply.
    if len(position) != 1 or not isinstance(position[0], int) or isinstance(position[0], bool):
        raise BadRequest("The cursor is not valid for this listing; start it again")
    return position[0]


def _summary(row: Any) -> OrderSummary:
    return OrderSummary(
        id=int(row["id"]),
        created_at=float(row["created_at"]),
        total_cents=int(row["total_cents"]),
        currency=str(row["currency"]),
        first_title=str(row["first_title"]),
        line_count=int(row["line_count"]),
        units=int(row["units"]),
    )


def _sale(row: Any) -> Sale:
    quantity = int(row["quantity"])
    unit_price = int(row["unit_price_cents"])
    return Sale(
        order_id=int(row["order_id"]),
        item_id=int(row["item_id"]),
        title=str(row["title"]),
        quantity=quantity,
        unit_price_cents=unit_price,
        line_total_cents=quantity * unit_price,
        currency=str(row["currency"]),
        buyer_name=str(row["buyer_name"]),
        sold_at=float(row["created_at"]),
    )


def _order_line(row: Any) -> OrderLine:
    quantity = int(row["quantity"])
    unit_price = int(row["unit_price_cents"])
    return OrderLine(
        item_id=int(row["item_id"]),
        title=str(row["title"]),
        quantity=quantity,
        unit_price_cents=unit_price,
        line_total_cents=quantity * unit_price,
        seller_id=int(row["seller_id"]),
        seller_name=str(row["seller_name"]),
    )
