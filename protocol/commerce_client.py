"""Provides the commerce calls over a :class:`~protocol.client.Session`.

The TUI, the scripting CLI, the tests and the benchmarks all shop through these helpers, so each
request is built in one place. Listings come as batches (``*_batch``) or as async iterators that
ask for the next batch only when the previous one is used up (``iter_*``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import msgspec

from protocol.client import Session
from protocol.errors import Conflict, OutOfStock, PixmartError
from protocol.messages.commerce import (
    AddToCart,
    Cart,
    CartView,
    Checkout,
    CheckoutFailure,
    ClearCart,
    GetCart,
    GetOrder,
    ListOrders,
    ListSales,
    Order,
    OrderBatch,
    OrderInfo,
    OrderPlaced,
    OrderSummary,
    RemoveFromCart,
    Sale,
    SaleBatch,
    SetCartQuantity,
)
from protocol.messages.sales import GetSalesSummary, SalesSummary, SalesSummaryView
from protocol.paging import paginate


async def get_cart(session: Session) -> Cart:
    """The cart; the session then hears about changes to it and to its items."""
    return (await session.request(GetCart(), CartView)).cart


async def add_to_cart(session: Session, item_id: int, quantity: int = 1) -> Cart:
    """Put ``quantity`` more units of an item in the cart; returns the cart."""
    return (await session.request(AddToCart(item_id=item_id, quantity=quantity), CartView)).cart


async def set_quantity(session: Session, item_id: int, quantity: int) -> Cart:
    """Change the units wanted of an item in the cart; returns the cart."""
    request = SetCartQuantity(item_id=item_id, quantity=quantity)
    return (await session.request(request, CartView)).cart


async def remove_from_cart(session: Session, item_id: int) -> Cart:
    """Take an item out of the cart; returns the cart."""
    return (await session.request(RemoveFromCart(item_id=item_id), CartView)).cart


async def clear_cart(session: Session) -> Cart:
    """Empty the cart; returns the (empty) cart."""
    return (await session.request(ClearCart(), CartView)).cart


def new_checkout_key() -> str:
    """A fresh checkout key: 128 random bits in hex. Keep it until the checkout succeeds."""
    return secrets.token_hex(16)


async def checkout(session: Session, expected_total_cents: int, checkout_key: str) -> OrderPlaced:
    """Buy the cart at the total shown to the person; a retry with the same key is safe.

    Raises:
        OutOfStock: some lines lack stock; :func:`checkout_failures` says which.
        Conflict: lines were deleted or made private, or the total changed.
        BadRequest: the cart is empty.
    """
    request = Checkout(checkout_key=checkout_key, expected_total_cents=expected_total_cents)
    return await session.request(request, OrderPlaced)


def checkout_failures(error: PixmartError) -> list[CheckoutFailure]:
    """The failing lines a checkout error names (empty for other errors)."""
    if not isinstance(error, OutOfStock | Conflict) or not error.details:
        return []
    try:
        return msgspec.convert(error.details.get("lines", []), list[CheckoutFailure])
    except msgspec.ValidationError:
        return []  # an error from elsewhere that carries other details


async def get_order(session: Session, order_id: int) -> Order:
    """One of the caller's orders with its lines."""
    return (await session.request(GetOrder(order_id=order_id), OrderInfo)).order


async def order_batch(
    session: Session, *, limit: int | None = None, cursor: str | None = None
) -> OrderBatch:
    """One batch of the caller's orders, newest first."""
    return await session.request(ListOrders(limit=limit, cursor=cursor), OrderBatch)


async def iter_orders(session: Session, *, limit: int | None = None) -> AsyncIterator[OrderSummary]:
    """Every order of the caller, newest first, fetched a batch at a time as consumed."""

    async def fetch(size: int | None, cursor: str | None) -> tuple[list[OrderSummary], str | None]:
        batch = await order_batch(session, limit=size, cursor=cursor)
        return batch.orders, batch.cursor

    async for order in paginate(fetch, batch=limit):
        yield order


async def sales_batch(
    session: Session, *, limit: int | None = None, cursor: str | None = None
) -> SaleBatch:
    """One batch of sales of the caller's items, newest first."""
    return await session.request(ListSales(limit=limit, cursor=cursor), SaleBatch)


async def iter_sales(session: Session, *, limit: int | None = None) -> AsyncIterator[Sale]:
    """Every sale of the caller's items, newest first, fetched a batch at a time as consumed."""

    async def fetch(size: int | None, cursor: str | None) -> tuple[list[Sale], str | None]:
        batch = await sales_batch(session, limit=size, cursor=cursor)
        return batch.sales, batch.cursor

    async for sale in paginate(fetch, batch=limit):
        yield sale


async def sales_summary(
    session: Session, *, days: int = 30, weeks: int = 12, top: int = 5, low_stock: int = 3
) -> SalesSummary:
    """The caller's sales summary: revenue and units per UTC day and ISO week over the last
    ``days`` days and ``weeks`` weeks, the ``top`` items, and items with ``low_stock`` units or
    fewer.

    Raises:
        BadRequest: a window, ``top`` or ``low_stock`` outside the protocol's bounds.
    """
    request = GetSalesSummary(days=days, weeks=weeks, top=top, low_stock=low_stock)
    return (await session.request(request, SalesSummaryView)).summary
