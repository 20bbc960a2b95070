"""Provides the live side of commerce: who hears about cart items, carts and stock taken.

A connection that shows or changes its cart is subscribed to the ``item:<id>`` topic of every
line, so it hears of price and stock changes and deletions made anywhere (the catalogue publishes
on those topics), and to ``user:<id>``, where the user's other connections announce cart changes.
Topics stay subscribed until the connection closes: a line removed from the cart may still be on
screen elsewhere, and a stray event about an item is harmless to a client.

A cart change is shared with the other instances as the user's id only (a cart can outgrow a
notification): an instance with connections of that user loads the cart and tells them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from backend.catalogue.live import item_topic, publish_changed
from backend.commerce.repository import StockChange
from backend.connection import Connection
from backend.eventbus import EventBus, Fact
from backend.events import EventHub
from protocol.messages.commerce import Cart, CartChanged

log = logging.getLogger(__name__)


class CartChangedFact(Fact, frozen=True, kw_only=True):
    """A user's cart changed."""

    user_id: int


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
    events.share(CartChangedFact(user_id=user_id))


class CartRefresher:
    """Tells this instance's connections of a user of a cart changed on another instance.

    At most one load per user runs at a time; facts that arrive meanwhile cause one more load
    after it, so the cart told last is never older than the last fact.
    """

    def __init__(self, events: EventHub, view: Callable[[int], Awaitable[Cart]]) -> None:
        self._events = events
        self._view = view
        self._running: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()

    def listen(self, bus: EventBus) -> None:
        """Take the cart facts of other instances from ``bus``."""
        bus.on(CartChangedFact, self.receive)

    def receive(self, fact: CartChangedFact) -> None:
        """Load and announce the user's cart, if any connection here listens for it."""
        user_id = fact.user_id
        if user_id in self._running:
            self._again.add(user_id)
        elif self._events.has_subscribers(user_topic(user_id)):
            self._running[user_id] = asyncio.create_task(
                self._refresh(user_id), name=f"pixmart-cart-refresh-{user_id}"
            )

    async def _refresh(self, user_id: int) -> None:
        try:
            while True:
                self._again.discard(user_id)
                cart = await self._view(user_id)
                self._events.publish(
                    user_topic(user_id),
                    CartChanged(cart=cart),
                    lambda other: other.user_id == user_id,
                )
                if user_id not in self._again:
                    return
        except Exception:  # the user's devices see the cart at their next request
            log.exception("loading a cart changed on another instance failed")
        finally:
            self._running.pop(user_id, None)
            self._again.discard(user_id)

    async def close(self) -> None:
        """Cancel the loads under way."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
