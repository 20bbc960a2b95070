"""Provides the commerce messages: the cart, checkout, orders, sales and cart events.

The cart lives on the server, one per user, so it follows the person across reconnects, restarts
and devices. Every cart request answers with the whole :class:`Cart` as it now stands, flagged
line by line (:class:`LineProblem`), so a client never has to merge partial updates.

Checkout is all or nothing. The client sends the total it showed the person and a random checkout
key; a retry with the same key (after a drop, a crash, from another connection) returns the same
order instead of placing a second one. A checkout that cannot be met fails with ``out_of_stock``
(every failing line lacks stock) or ``conflict`` (anything else), and the error's ``details``
carry ``{"lines": [CheckoutFailure, ...], "total_cents": ..., "expected_total_cents": ...}``:
one :class:`CheckoutFailure` per failing line and reason (``price_changed`` lines only when the
confirmed total is not the current one).

Orders and sales are listed newest first in batches, like every list: the first request returns a
batch and an opaque cursor, the next batch comes only when asked for with that cursor.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Annotated

import msgspec

from protocol.messages.base import Event, Hex128, Message, Reply, Request
from protocol.messages.catalogue import BatchLimit, Cursor, ItemId

#: Units of one item in a cart line; the server also caps it at the item's stock.
Quantity = Annotated[int, msgspec.Meta(ge=1, le=10**9)]
OrderId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
#: Integer minor units of the server's currency; a cart total can exceed one item's price cap.
TotalCents = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class LineProblem(enum.StrEnum):
    """Why a cart line cannot be bought as it stands (also the ``reason`` of checkout errors)."""

    #: The seller deleted the item; the line keeps the title and price it had when added.
    DELETED = "deleted"
    #: The seller made the item private; it is not for sale any more.
    PRIVATE = "private"
    #: The price differs from the one seen when the line was added (shown, not blocking, in the
    #: cart; a checkout fails with it only when the confirmed total differs).
    PRICE_CHANGED = "price_changed"
    #: Fewer units are left than the line asks for.
    OUT_OF_STOCK = "out_of_stock"


#: Problems that stop a checkout whatever total the person confirmed.
BLOCKING_PROBLEMS: frozenset[LineProblem] = frozenset(
    {LineProblem.DELETED, LineProblem.PRIVATE, LineProblem.OUT_OF_STOCK}
)


class CheckoutFailure(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Why one cart line stopped a checkout: an entry of the error's ``details["lines"]``.

    Attributes:
        item_id: The line's item.
        title: The title the person knows the line by.
        reason: What is wrong with the line.
        quantity: Units the line asks for.
        stock: Units left (0 when the item is gone or private).
        price_cents: The unit price now (as remembered when the item is gone or private).
        added_price_cents: The unit price seen when the line was added.
    """

    item_id: int
    title: str
    reason: LineProblem
    quantity: int
    stock: int
    price_cents: int
    added_price_cents: int


class CartLine(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One item in the cart, as it stands now.

    Attributes:
        item_id: The item.
        title: The current title; the title when added if the item is gone or private.
        quantity: Units wanted.
        price_cents: The current unit price; the price when added if the item is gone or private.
        added_price_cents: The unit price seen when the line was added.
        stock: Units left now; 0 when the item is gone or private.
        line_total_cents: ``price_cents * quantity``.
        problems: Why the line cannot be bought as it stands; empty when it can.
        added_at: When the line was added (server clock, seconds since the epoch).
    """

    item_id: int
    title: str
    quantity: int
    price_cents: int
    added_price_cents: int
    stock: int
    line_total_cents: int
    problems: list[LineProblem] = msgspec.field(default_factory=list)
    added_at: float = 0.0


class Cart(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A user's cart.

    Attributes:
        lines: Oldest first.
        total_cents: What a checkout would charge now: the line totals of every line still for
            sale (deleted and private lines count nothing). Send it back as the confirmed total.
        units: Units over all lines.
        ready: Whether a checkout could succeed now (a non-empty cart without blocking problems).
    """

    lines: list[CartLine] = msgspec.field(default_factory=list)
    total_cents: int = 0
    units: int = 0
    ready: bool = False


class OrderLine(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One item bought, as it was when bought (it stays readable after the item is deleted)."""

    item_id: int
    title: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    seller_id: int
    seller_name: str


class Order(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """An order with its lines.

    Attributes:
        currency: The currency the prices were paid in (the server's at the time).
    """

    id: int
    created_at: float
    total_cents: int
    currency: str
    lines: list[OrderLine]


class OrderSummary(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """An order in a listing, without its lines.

    Attributes:
        first_title: The title of its first line, to name the order in a list.
        line_count: Distinct items bought.
        units: Units over all lines.
    """

    id: int
    created_at: float
    total_cents: int
    currency: str
    first_title: str
    line_count: int
    units: int


class Sale(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One line of someone's order for one of the seller's items."""

    order_id: int
    item_id: int
    title: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    currency: str
    buyer_name: str
    sold_at: float


# -- cart ------------------------------------------------------------------------------------


class GetCart(Request):
    """Show the cart; the connection is then told about changes to its items and the cart."""


class AddToCart(Request):
    """Put ``quantity`` more units of an item in the cart (a new line, or added to its line).

    The line's remembered title and price become the current ones: the person just saw them.
    """

    item_id: ItemId
    quantity: Quantity = 1


class SetCartQuantity(Request):
    """Change how many units of an item already in the cart are wanted."""

    item_id: ItemId
    quantity: Quantity


class RemoveFromCart(Request):
    """Take an item's line out of the cart."""

    item_id: ItemId


class ClearCart(Request):
    """Empty the cart."""


class CartView(Reply):
    """The cart after the request."""

    cart: Cart


class CartChanged(Event):
    """The cart was changed by another connection of the same user (another device)."""

    cart: Cart


# -- checkout and orders ---------------------------------------------------------------------


class Checkout(Request):
    """Buy everything in the cart, all or nothing.

    Attributes:
        checkout_key: 128 random bits in hex, made by the client once per purchase and kept
            until it succeeds; a retry with the same key returns the same order.
        expected_total_cents: The total shown to the person (:attr:`Cart.total_cents`); if the
            cart would cost anything else now, nothing is bought (``conflict``).
    """

    checkout_key: Hex128
    expected_total_cents: TotalCents


class OrderPlaced(Reply):
    """The order of a checkout.

    Attributes:
        replayed: ``True`` when the checkout key had already placed this order earlier.
    """

    order: Order
    replayed: bool = False


class ListOrders(Request):
    """The caller's orders, newest first; send again with ``cursor`` for the next batch."""

    limit: BatchLimit | None = None
    cursor: Cursor | None = None


class OrderBatch(Reply):
    """One batch of orders; ``cursor`` is ``None`` after the last one."""

    orders: list[OrderSummary]
    cursor: str | None = None


class GetOrder(Request):
    """One of the caller's orders with its lines."""

    order_id: OrderId


class OrderInfo(Reply):
    """One order in full."""

    order: Order


class ListSales(Request):
    """Sales of the caller's items, newest first; send again with ``cursor`` for the next."""

    limit: BatchLimit | None = None
    cursor: Cursor | None = None


class SaleBatch(Reply):
    """One batch of sales; ``cursor`` is ``None`` after the last one."""

    sales: list[Sale]
    cursor: str | None = None


def describe_failure(failure: CheckoutFailure, money: Callable[[int], str]) -> str:
    """One failing checkout line in words; ``money`` formats minor units of the currency."""
    title = f"'{failure.title}'"
    if failure.reason is LineProblem.DELETED:
        return f"{title} was deleted by its seller"
    if failure.reason is LineProblem.PRIVATE:
        return f"{title} is no longer for sale"
    if failure.reason is LineProblem.PRICE_CHANGED:
        now, was = money(failure.price_cents), money(failure.added_price_cents)
        return f"{title} now costs {now} (it was {was})"
    if failure.stock == 0:
        return f"{title} is sold out"
    return f"only {failure.stock} of {title} left (you want {failure.quantity})"


MESSAGES: tuple[type[Message], ...] = (
    GetCart,
    AddToCart,
    SetCartQuantity,
    RemoveFromCart,
    ClearCart,
    CartView,
    CartChanged,
    Checkout,
    OrderPlaced,
    ListOrders,
    OrderBatch,
    GetOrder,
    OrderInfo,
    ListSales,
    SaleBatch,
)
