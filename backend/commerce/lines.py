"""Provides cart lines joined with their items' current state, and how they are judged.

The same judgement serves the cart view (flags shown to the person) and checkout (what blocks the
purchase), so the two can never disagree about a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from protocol.messages.commerce import BLOCKING_PROBLEMS, Cart, CartLine, LineProblem

#: An item's current state as every commerce query names it (all NULL when it was deleted).
ITEM_COLUMNS = """
       i.owner_id AS item_owner, i.title AS item_title, i.price_cents AS item_price,
       i.stock AS item_stock, i.public AS item_public
"""

#: A user's cart lines, oldest first, with the current state of each item.
LINES_SQL = f"""
SELECT c.item_id, c.quantity, c.title, c.price_cents, c.added_at, {ITEM_COLUMNS}
FROM cart_lines AS c LEFT JOIN items AS i ON i.id = c.item_id
WHERE c.user_id = ?
ORDER BY c.added_at, c.item_id
"""


@dataclass(frozen=True, slots=True)
class ItemState:
    """An item as it is now."""

    owner_id: int
    title: str
    price_cents: int
    stock: int
    public: bool


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A cart line as stored (title and price as seen when added) and its item now.

    Attributes:
        item: The item's current state, or ``None`` when it was deleted.
    """

    item_id: int
    quantity: int
    title: str
    price_cents: int
    added_at: float
    item: ItemState | None

    @property
    def for_sale(self) -> bool:
        """Whether the item still exists and is public."""
        return self.item is not None and self.item.public

    @property
    def problems(self) -> list[LineProblem]:
        """Why the line cannot be bought as it stands, in a stable order."""
        if self.item is None:
            return [LineProblem.DELETED]
        if not self.item.public:
            # Nothing more is said about a private item: its price and stock are not ours to see.
            return [LineProblem.PRIVATE]
        problems: list[LineProblem] = []
        if self.item.price_cents != self.price_cents:
            problems.append(LineProblem.PRICE_CHANGED)
        if self.item.stock < self.quantity:
            problems.append(LineProblem.OUT_OF_STOCK)
        return problems

    @property
    def unit_price_cents(self) -> int:
        """The price a checkout would charge per unit (the remembered one when not for sale)."""
        if self.item is not None and self.item.public:
            return self.item.price_cents
        return self.price_cents

    def view(self) -> CartLine:
        """The line as the protocol shows it."""
        visible = self.item if self.item is not None and self.item.public else None
        price = visible.price_cents if visible else self.price_cents
        return CartLine(
            item_id=self.item_id,
            title=visible.title if visible else self.title,
            quantity=self.quantity,
            price_cents=price,
            added_price_cents=self.price_cents,
            stock=visible.stock if visible else 0,
            line_total_cents=price * self.quantity,
            problems=self.problems,
            added_at=self.added_at,
        )


def item_from_row(row: Any) -> ItemState | None:
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


def lines_from_rows(rows: Iterable[Any]) -> list[StoredLine]:
    """Cart lines from rows of :data:`LINES_SQL`."""
    return [
        StoredLine(
            item_id=int(row["item_id"]),
            quantity=int(row["quantity"]),
            title=str(row["title"]),
            price_cents=int(row["price_cents"]),
            added_at=float(row["added_at"]),
            item=item_from_row(row),
        )
        for row in rows
    ]


async def load_lines(conn: aiosqlite.Connection, user_id: int) -> list[StoredLine]:
    """A user's cart lines read through ``conn`` (e.g. inside a write transaction)."""
    # One call into the database thread: inside the write lock every round trip counts.
    return lines_from_rows(await conn.execute_fetchall(LINES_SQL, (user_id,)))


def cart_total(lines: Iterable[StoredLine]) -> int:
    """What a checkout would charge now: every line still for sale at its current price."""
    return sum(line.unit_price_cents * line.quantity for line in lines if line.for_sale)


def cart_of(lines: list[StoredLine]) -> Cart:
    """The cart as the protocol shows it."""
    views = [line.view() for line in lines]
    return Cart(
        lines=views,
        total_cents=cart_total(lines),
        units=sum(line.quantity for line in lines),
        ready=bool(lines) and not any(BLOCKING_PROBLEMS.intersection(v.problems) for v in views),
    )
