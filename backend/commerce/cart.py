"""Provides :class:`CartService`: the server-side cart of each user.

Every change is decided inside the repository's transaction from what it read (the item, the
line, the cart), and the cart in a reply is read back in that transaction: exactly the
committed one.
"""

from __future__ import annotations

import time
from typing import Final

from backend.accounts.service import Principal
from backend.commerce.lines import ItemState, StoredLine, cart_of
from backend.commerce.repository import CartRepository, CartSlot, LineWrite
from protocol.errors import BadRequest, Conflict, Forbidden, NotFound, OutOfStock
from protocol.messages.commerce import Cart

#: Distinct items one cart may hold; a cart is a shopping list, not a warehouse.
MAX_CART_LINES: Final = 200
#: The most one cart line may cost (1e13 EUR in cents): far above any real purchase, far below
#: where integer sums could overflow SQLite's 64-bit integers.
MAX_LINE_CENTS: Final = 10**15


class CartService:
    """Add, change, remove and show the lines of a user's cart.

    Args:
        repository: Where carts are stored.
        max_lines: Distinct items one cart may hold.
    """

    def __init__(self, repository: CartRepository, *, max_lines: int = MAX_CART_LINES) -> None:
        self._repository = repository
        self._max_lines = max_lines

    async def view(self, user_id: int) -> Cart:
        """The user's cart as it stands, each line flagged with its problems."""
        return cart_of(await self._repository.lines(user_id))

    async def add(self, principal: Principal, item_id: int, quantity: int) -> Cart:
        """Add ``quantity`` units of an item; its remembered title and price become current.

        Raises:
            NotFound: no such item, or it is someone else's private item.
            Forbidden: the item is the caller's own.
            OutOfStock: the line would ask for more units than are left.
            BadRequest: the cart is full, or the line would cost more than one line may.
        """
        user_id = principal.user_id

        def decide(slot: CartSlot) -> LineWrite:
            item = slot.item
            if item is None:
                raise _no_such_item(item_id)
            if item.owner_id == user_id:
                raise Forbidden("You cannot buy your own item")
            if not item.public:
                # The same answer as for a missing item: a private item's existence is not ours
                # to reveal (admins included: private items are not for sale).
                raise _no_such_item(item_id)
            if not slot.in_cart and slot.line_count >= self._max_lines:
                raise BadRequest(f"A cart holds at most {self._max_lines} different items")
            wanted = slot.in_cart + quantity
            _check_quantity(item_id, item, wanted, in_cart=slot.in_cart)
            return LineWrite(quantity=wanted, title=item.title, price_cents=item.price_cents)

        return cart_of(await self._repository.add(user_id, item_id, decide, now=time.time()))

    async def set_quantity(self, user_id: int, item_id: int, quantity: int) -> Cart:
        """Change how many units of an item in the cart are wanted.

        Raises:
            NotFound: the item is not in the cart.
            Conflict: the item is no longer for sale (deleted or private).
            OutOfStock: fewer units are left than asked for.
            BadRequest: the line would cost more than one line may.
        """

        def decide(line: StoredLine | None) -> int:
            if line is None:
                raise _not_in_cart(item_id)
            item = line.item
            if item is None or not item.public:
                raise Conflict(
                    f"Item {item_id} is no longer for sale; remove it from your cart",
                    details={"item_id": item_id},
                )
            _check_quantity(item_id, item, quantity, in_cart=0)
            return quantity

        lines = await self._repository.set_quantity(user_id, item_id, decide, now=time.time())
        return cart_of(lines)

    async def remove(self, user_id: int, item_id: int) -> Cart:
        """Take an item's line out of the cart.

        Raises:
            NotFound: the item is not in the cart.
        """
        lines = await self._repository.remove(user_id, item_id)
        if lines is None:
            raise _not_in_cart(item_id)
        return cart_of(lines)

    async def clear(self, user_id: int) -> Cart:
        """Empty the cart (an empty cart stays empty)."""
        await self._repository.clear(user_id)
        return Cart()


def _no_such_item(item_id: int) -> NotFound:
    return NotFound(f"There is no item {item_id} for sale")


def _not_in_cart(item_id: int) -> NotFound:
    return NotFound(f"Item {item_id} is not in your cart")


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
