"""Provides the live side of commerce: who hears about cart items, carts and stock taken.

A connection that shows or changes its cart is subscribed to the ``item:<id>`` topic of every
line, so it hears of price and stock changes and deletions made anywhere (the catalogue publishes
on those topics), and to ``user:<id>``, where the user's other connections announce cart changes.
Topics stay subscribed until the connection closes: a line removed from the cart may still be on
screen elsewhere, and a stray event about an item is harmless to a client.
"""

from __future__ import annotations

from collections.abc import Iterable

from backend.catalogue.live import item_topic, publish_changed
from backend.commerce.repository import StockChange
from backend.connection import Connection
from backend.events import EventHub
from protocol.messages.commerce import Cart, CartChanged


def user_topic(user_id: int) -> str:
    """The topic of one user's connections."""
    return f"user:{user_id}"


def watch_cart(events: EventHub, connection: Connection, cart: Cart) -> None:
    """Subscribe ``connection`` to its user's cart changes and to every item in ``cart``."""
    principal = connection.principal
    if principal is None:
        return
    events.subscribe(connection, user_topic(principal.user_id))
    for line in cart.lines:
        events.subscribe(connection, item_topic(line.item_id))


def announce_cart(events: EventHub, origin: Connection, user_id: int, cart: Cart) -> None:
    """Tell the user's other connections that the cart is now ``cart``."""

    def audience(other: Connection) -> bool:
        # A connection that logged in as someone else since it subscribed must not hear it.
        return other is not origin and other.user_id == user_id

    events.publish(user_topic(user_id), CartChanged(cart=cart), audience)


def announce_stock(events: EventHub, changes: Iterable[StockChange]) -> None:
    """Tell everyone looking at or holding these items their new stock."""
    for change in changes:
        item = change.item
        publish_changed(
            events,
            item_id=change.item_id,
            owner_id=item.owner_id,
            title=item.title,
            price_cents=item.price_cents,
            stock=item.stock,
            public=item.public,
        )
