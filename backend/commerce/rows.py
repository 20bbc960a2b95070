"""Provides the columns commerce queries share, records made of their rows, and rows to write.

Both repositories alias their columns alike, so one set of readers serves SQLite rows and
asyncpg records (both are read by column name). Values are converted explicitly: SQLite keeps
booleans as 0/1, and PostgreSQL sums of BIGINT columns come back as decimals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from backend.commerce.lines import ItemState, StoredLine
from backend.commerce.repository import StockChange
from protocol.messages.commerce import Order, OrderLine, OrderSummary, Sale

#: An item's current state as every commerce query names it (all NULL when it was deleted).
ITEM_COLUMNS = """
       i.owner_id AS item_owner, i.title AS item_title, i.price_cents AS item_price,
       i.stock AS item_stock, i.public AS item_public
"""

#: Above every id either engine hands out (both use signed 64-bit ids): a listing that starts
#: below it starts at the newest row.
ABOVE_EVERY_ID = 2**63 - 1


#: The columns of an order line as :func:`order_line_values` gives them.
ORDER_LINE_COLUMNS = "order_id, item_id, seller_id, title, quantity, unit_price_cents"


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
    """A cart line from its columns (item_id, quantity, title, price_cents, added_at) and
    :data:`ITEM_COLUMNS`.
    """
    return StoredLine(
        item_id=int(row["item_id"]),
        quantity=int(row["quantity"]),
        title=str(row["title"]),
        price_cents=int(row["price_cents"]),
        added_at=float(row["added_at"]),
        item=item_from_row(row),
    )


def order_from_rows(row: Row, lines: Iterable[Row]) -> Order:
    """An order (id, created_at, total_cents, currency) with its lines (item_id, title,
    quantity, unit_price_cents, seller_id, seller_name).
    """
    return Order(
        id=int(row["id"]),
        created_at=float(row["created_at"]),
        total_cents=int(row["total_cents"]),
        currency=str(row["currency"]),
        lines=[_order_line(line) for line in lines],
    )


def summary_from_row(row: Row) -> OrderSummary:
    """An order summary (the order's columns, first_title, line_count, units)."""
    return OrderSummary(
        id=int(row["id"]),
        created_at=float(row["created_at"]),
        total_cents=int(row["total_cents"]),
        currency=str(row["currency"]),
        first_title=str(row["first_title"]),
        line_count=int(row["line_count"]),
        units=int(row["units"]),
    )


def sale_from_row(row: Row) -> Sale:
    """A sale (order_id, item_id, title, quantity, unit_price_cents, currency, created_at,
    buyer_name).
    """
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
    order_id: int, lines: Sequence[StoredLine], changes: Sequence[StockChange]
) -> list[tuple[int, int, int, str, int, int]]:
    """The :data:`ORDER_LINE_COLUMNS` of an order bought from ``lines``, in cart order.

    Args:
        changes: What taking each line's stock left (one per line, in the same order): the
            seller, title and price the order records are the approved ones.
    """
    return [
        (
            order_id,
            change.item_id,
            change.item.owner_id,
            change.item.title,
            line.quantity,
            change.item.price_cents,
        )
        for line, change in zip(lines, changes, strict=True)
    ]
