"""Provides the columns commerce queries share, records made of their rows, and rows to write.

Both repositories select these columns alike, so one set of readers serves SQLite rows and
asyncpg records (both are read by column name). A ``*_SELECT`` holds a query's columns and
joins; each engine adds its conditions, in its own placeholders. Values are converted
explicitly: SQLite keeps booleans as 0/1, and PostgreSQL sums of BIGINT columns come back as
decimals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

from backend.commerce.lines import ItemState, StoredLine
from backend.commerce.repository import CartSlot, Keyed, StockChange
from protocol.messages.commerce import Order, OrderLine, OrderSummary, Sale

#: An item's current state as every commerce query names it (all NULL when it was deleted).
ITEM_COLUMNS = """
       i.owner_id AS item_owner, i.title AS item_title, i.price_cents AS item_price,
       i.stock AS item_stock, i.public AS item_public
"""

#: Cart lines (``c``) with their items' current state, as :func:`line_from_row` reads them.
LINE_SELECT = f"""
SELECT c.item_id, c.quantity, c.title, c.price_cents, c.added_at, {ITEM_COLUMNS}
FROM cart_lines AS c LEFT JOIN items AS i ON i.id = c.item_id
"""

#: Order lines (``l``) with their orders and buyers, as :func:`keyed_sale` reads them.
SALE_SELECT = """
SELECT l.id, l.order_id, l.item_id, l.title, l.quantity, l.unit_price_cents,
       o.currency, o.created_at, u.username AS buyer_name
FROM order_lines AS l
JOIN orders AS o ON o.id = l.order_id
JOIN users AS u ON u.id = o.user_id
"""

#: Orders, as :func:`order_from_rows` reads them.
ORDER_SELECT = "SELECT id, user_id, created_at, total_cents, currency FROM orders"

#: Order lines (``l``) with their sellers' names, as :func:`order_from_rows` reads them.
ORDER_LINE_SELECT = """
SELECT l.item_id, l.title, l.quantity, l.unit_price_cents, l.seller_id, u.username AS seller_name
FROM order_lines AS l JOIN users AS u ON u.id = l.seller_id
"""

#: The columns of an order line as :func:`order_line_values` gives them.
ORDER_LINE_COLUMNS = "order_id, item_id, seller_id, title, quantity, unit_price_cents, sold_at"

#: Above every id either engine hands out (both use signed 64-bit ids).
_ABOVE_EVERY_ID: Final = 2**63 - 1


def start_below(position: int | None) -> int:
    """The id a listing batch starts below: ``position``, or above every id (the newest first)."""
    return _ABOVE_EVERY_ID if position is None else position


class Row(Protocol):
    """A result row of either engine."""

    def __getitem__(self, key: str, /) -> Any:
        """The value of the column named ``key``."""


def item_from_row(row: Row) -> ItemState | None:
    """The :data:`ITEM_COLUMNS` of a row as an :class:`ItemState`, ``None`` when deleted."""
    if row["item_owner"] is None:
        return None
    return ItemState(
        owner_id=int(row["item_owner"]),
        title=str(row["item_title"]),
        price_cents=int(row["item_price"]),
        stock=int(row["item_stock"]),
        public=bool(row["item_public"]),
    )


def line_from_row(row: Row) -> StoredLine:
    """A cart line of :data:`LINE_SELECT`."""
    return StoredLine(
        item_id=int(row["item_id"]),
        quantity=int(row["quantity"]),
        title=str(row["title"]),
        price_cents=int(row["price_cents"]),
        added_at=float(row["added_at"]),
        item=item_from_row(row),
    )


def slot_from_row(row: Row) -> CartSlot:
    """An add's :class:`CartSlot` from :data:`ITEM_COLUMNS`, ``in_cart`` (NULL without a line)
    and ``line_count``.
    """
    return CartSlot(
        item=item_from_row(row),
        in_cart=int(row["in_cart"] or 0),
        line_count=int(row["line_count"]),
    )


def order_from_rows(row: Row, lines: Iterable[Row]) -> Order:
    """An order of :data:`ORDER_SELECT` with its lines of :data:`ORDER_LINE_SELECT`."""
    return Order(
        id=int(row["id"]),
        created_at=float(row["created_at"]),
        total_cents=int(row["total_cents"]),
        currency=str(row["currency"]),
        lines=[_order_line(line) for line in lines],
    )


def keyed_summary(row: Row) -> Keyed[OrderSummary]:
    """An order summary (the order's columns, first_title, line_count, units) at its order's
    position.
    """
    order_id = int(row["id"])
    return Keyed(
        order_id,
        OrderSummary(
            id=order_id,
            created_at=float(row["created_at"]),
            total_cents=int(row["total_cents"]),
            currency=str(row["currency"]),
            first_title=str(row["first_title"]),
            line_count=int(row["line_count"]),
            units=int(row["units"]),
        ),
    )


def keyed_sale(row: Row) -> Keyed[Sale]:
    """A sale of :data:`SALE_SELECT` at its order line's position."""
    quantity = int(row["quantity"])
    unit_price = int(row["unit_price_cents"])
    sale = Sale(
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
    return Keyed(int(row["id"]), sale)


def _order_line(row: Row) -> OrderLine:
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


def order_line_values(
    order_id: int, lines: Sequence[StoredLine], changes: Sequence[StockChange], sold_at: float
) -> list[tuple[int, int, int, str, int, int, float]]:
    """The :data:`ORDER_LINE_COLUMNS` of an order bought from ``lines``, in cart order.

    Args:
        changes: What taking each line's stock left (one per line, in the same order): the
            seller, title and price the order records are the approved ones.
        sold_at: The order's ``created_at``, kept on each line for sellers' sales by date.
    """
    return [
        (
            order_id,
            change.item_id,
            change.item.owner_id,
            change.item.title,
            line.quantity,
            change.item.price_cents,
            sold_at,
        )
        for line, change in zip(lines, changes, strict=True)
    ]
