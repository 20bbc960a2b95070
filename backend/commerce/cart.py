"""Provides :class:`CartService`: the server-side cart of each user.

Every change runs in one write transaction that checks the item, changes the line and reads the
cart back, so the cart in a reply is exactly the committed one.
"""

from __future__ import annotations

import time
from typing import Final

from backend.accounts.service import Principal
from backend.commerce.lines import (
    ITEM_COLUMNS,
    LINES_SQL,
    ItemState,
    cart_of,
    item_from_row,
    lines_from_rows,
    load_lines,
)
from backend.storage.database import Database
from protocol.errors import BadRequest, Conflict, Forbidden, NotFound, OutOfStock
from protocol.messages.commerce import Cart

#: Distinct items one cart may hold; a cart is a shopping list, not a warehouse.
MAX_CART_LINES: Final = 200
#: The most one cart line may cost (1e13 EUR in cents): far above any real purchase, far below
#: where integer sums could overflow SQLite's 64-bit integers.
MAX_LINE_CENTS: Final = 10**15

# What adding needs to know, in one round trip: the item, its line in the cart, the line count.
_FOR_ADD_SQL = f"""
SELECT {ITEM_COLUMNS},
       (SELECT quantity FROM cart_lines WHERE user_id = :user AND item_id = i.id) AS in_cart,
       (SELECT count(*) FROM cart_lines WHERE user_id = :user) AS line_count
FROM items AS i WHERE i.id = :item
"""

# What changing a line needs: the line and its item (NULLs when the item was deleted).
_FOR_SET_SQL = f"""
SELECT c.quantity, {ITEM_COLUMNS}
FROM cart_lines AS c LEFT JOIN items AS i ON i.id = c.item_id
WHERE c.user_id = :user AND c.item_id = :item
"""


class CartService:
    """Add, change, remove and show the lines of a user's cart.

    Args:
        db: The database.
        max_lines: Distinct items one cart may hold.
    """

    def __init__(self, db: Database, *, max_lines: int = MAX_CART_LINES) -> None:
        self._db = db
        self._max_lines = max_lines

    async def view(self, user_id: int) -> Cart:
        """The user's cart as it stands, each line flagged with its problems."""
        # One statement, so lines and items come from the same committed snapshot.
        return cart_of(lines_from_rows(await self._db.fetchall(LINES_SQL, (user_id,))))

    async def add(self, principal: Principal, item_id: int, quantity: int) -> Cart:
        """Add ``quantity`` units of an item; its remembered title and price become current.

        Raises:
            NotFound: no such item, or it is someone else's private item.
            Forbidden: the item is the caller's own.
            OutOfStock: the line would ask for more units than are left.
            BadRequest: the cart is full, or the line would cost more than one line may.
        """
        user_id = principal.user_id
        async with self._db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(_FOR_ADD_SQL, {"user": user_id, "item": item_id})
            )
            item = item_from_row(rows[0]) if rows else None
            if item is None:
                raise _no_such_item(item_id)
            if item.owner_id == user_id:
                raise Forbidden("You cannot buy your own item")
            if not item.public:
                # The same answer as for a missing item: a private item's existence is not ours
                # to reveal (admins included: private items are not for sale).
                raise _no_such_item(item_id)
            in_cart = int(rows[0]["in_cart"] or 0)
            if not in_cart and int(rows[0]["line_count"]) >= self._max_lines:
                raise BadRequest(f"A cart holds at most {self._max_lines} different items")
            wanted = in_cart + quantity
            _check_quantity(item_id, item, wanted, in_cart=in_cart)
            now = time.time()
            await conn.execute(
                "INSERT INTO cart_lines"
                " (user_id, item_id, quantity, title, price_cents, added_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, item_id) DO UPDATE SET quantity = excluded.quantity,"
                " title = excluded.title, price_cents = excluded.price_cents,"
                " updated_at = excluded.updated_at",
                (user_id, item_id, wanted, item.title, item.price_cents, now, now),
            )
            return cart_of(await load_lines(conn, user_id))

    async def set_quantity(self, user_id: int, item_id: int, quantity: int) -> Cart:
        """Change how many units of an item in the cart are wanted.

        Raises:
            NotFound: the item is not in the cart.
            Conflict: the item is no longer for sale (deleted or private).
            OutOfStock: fewer units are left than asked for.
            BadRequest: the line would cost more than one line may.
        """
        async with self._db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(_FOR_SET_SQL, {"user": user_id, "item": item_id})
            )
            if not rows:
                raise NotFound(f"Item {item_id} is not in your cart")
            item = item_from_row(rows[0])
            if item is None or not item.public:
                raise Conflict(
                    f"Item {item_id} is no longer for sale; remove it from your cart",
                    details={"item_id": item_id},
                )
            _check_quantity(item_id, item, quantity, in_cart=0)
            await conn.execute(
                "UPDATE cart_lines SET quantity = ?, updated_at = ?"
                " WHERE user_id = ? AND item_id = ?",
                (quantity, time.time(), user_id, item_id),
            )
            return cart_of(await load_lines(conn, user_id))

    async def remove(self, user_id: int, item_id: int) -> Cart:
        """Take an item's line out of the cart.

        Raises:
            NotFound: the item is not in the cart.
        """
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM cart_lines WHERE user_id = ? AND item_id = ?", (user_id, item_id)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"Item {item_id} is not in your cart")
            return cart_of(await load_lines(conn, user_id))

    async def clear(self, user_id: int) -> Cart:
        """Empty the cart (an empty cart stays empty)."""
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM cart_lines WHERE user_id = ?", (user_id,))
        return Cart()


def _no_such_item(item_id: int) -> NotFound:
    return NotFound(f"There is no item {item_id} for sale")


def _check_quantity(item_id: int, item: ItemState, wanted: int, *, in_cart: int) -> None:
    """Raise unless ``wanted`` units of ``item`` can sit in one cart line."""
    if wanted > item.stock:
        if item.stock == 0:
            message = f"'{item.title}' is sold out"
        else:
            message = f"Only {item.stock} of '{item.title}' left"
            if in_cart:
                message += f", and {in_cart} already in your cart"
        raise OutOfStock(
            message,
            details={"item_id": item_id, "stock": item.stock, "in_cart": in_cart},
        )
    if item.price_cents * wanted > MAX_LINE_CENTS:
        raise BadRequest("That many units cost more than one order may")
