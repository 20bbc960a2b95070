"""Provides the request handlers of commerce: cart, checkout, orders, sales and their summary."""

from __future__ import annotations

from backend.commerce.live import announce_cart, announce_stock, watch_cart
from backend.commerce.service import CommerceService
from backend.connection import Connection
from backend.dispatch import Dispatcher
from backend.events import EventHub
from protocol.messages.base import Reply
from protocol.messages.commerce import (
    AddToCart,
    Cart,
    CartView,
    Checkout,
    ClearCart,
    GetCart,
    GetOrder,
    ListOrders,
    ListSales,
    OrderBatch,
    OrderInfo,
    OrderPlaced,
    RemoveFromCart,
    SaleBatch,
    SetCartQuantity,
)
from protocol.messages.sales import GetSalesSummary, SalesSummaryView


def register(dispatcher: Dispatcher, commerce: CommerceService, events: EventHub) -> None:
    """Register the commerce handlers."""
    cart = commerce.cart

    async def watch(connection: Connection, reply: Reply) -> None:
        # Runs for replayed replies too, so a request retried on a new connection subscribes it.
        if isinstance(reply, CartView):
            watch_cart(events, connection, reply.cart)

    def changed(connection: Connection, request_id: int, new_cart: Cart) -> Reply:
        user_id = connection.require_user().user_id
        announce_cart(events, connection, user_id, new_cart)
        return CartView(id=request_id, cart=new_cart)

    @dispatcher.route(GetCart, replayable=False, after=watch)
    async def get_cart(connection: Connection, request: GetCart) -> Reply:
        return CartView(id=request.id, cart=await cart.view(connection.require_user().user_id))

    @dispatcher.route(AddToCart, after=watch)
    async def add_to_cart(connection: Connection, request: AddToCart) -> Reply:
        new_cart = await cart.add(connection.require_user(), request.item_id, request.quantity)
        return changed(connection, request.id, new_cart)

    @dispatcher.route(SetCartQuantity, after=watch)
    async def set_quantity(connection: Connection, request: SetCartQuantity) -> Reply:
        user_id = connection.require_user().user_id
        new_cart = await cart.set_quantity(user_id, request.item_id, request.quantity)
        return changed(connection, request.id, new_cart)

    @dispatcher.route(RemoveFromCart, after=watch)
    async def remove_from_cart(connection: Connection, request: RemoveFromCart) -> Reply:
        new_cart = await cart.remove(connection.require_user().user_id, request.item_id)
        return changed(connection, request.id, new_cart)

    @dispatcher.route(ClearCart, after=watch)
    async def clear_cart(connection: Connection, request: ClearCart) -> Reply:
        new_cart = await cart.clear(connection.require_user().user_id)
        return changed(connection, request.id, new_cart)

    @dispatcher.route(Checkout)
    async def checkout(connection: Connection, request: Checkout) -> Reply:
        user_id = connection.require_user().user_id
        result = await commerce.checkout.checkout(
            user_id, request.checkout_key, request.expected_total_cents
        )
        if not result.replayed:
            # Only after the commit: nobody hears of stock that a rollback could give back.
            announce_stock(events, result.stock_changes)
            announce_cart(events, connection, user_id, Cart())
        return OrderPlaced(id=request.id, order=result.order, replayed=result.replayed)

    @dispatcher.route(ListOrders, replayable=False)
    async def list_orders(connection: Connection, request: ListOrders) -> Reply:
        orders, cursor = await commerce.orders.orders(
            connection.require_user().user_id, limit=request.limit, cursor=request.cursor
        )
        return OrderBatch(id=request.id, orders=orders, cursor=cursor)

    @dispatcher.route(GetOrder, replayable=False)
    async def get_order(connection: Connection, request: GetOrder) -> Reply:
        order = await commerce.orders.order(connection.require_user(), request.order_id)
        return OrderInfo(id=request.id, order=order)

    @dispatcher.route(ListSales, replayable=False)
    async def list_sales(connection: Connection, request: ListSales) -> Reply:
        sales, cursor = await commerce.orders.sales(
            connection.require_user().user_id, limit=request.limit, cursor=request.cursor
        )
        return SaleBatch(id=request.id, sales=sales, cursor=cursor)

    @dispatcher.route(GetSalesSummary, replayable=False)
    async def sales_summary(connection: Connection, request: GetSalesSummary) -> Reply:
        # The seller is whoever is logged in: a client cannot ask for another's figures.
        summary = await commerce.report.summary(connection.require_user().user_id, request)
        return SalesSummaryView(id=request.id, summary=summary)
