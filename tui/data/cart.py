"""Provides :class:`CartModel`: the person's cart as the server last told it, and changes to it.

The cart is the server's: every change answers with the whole cart, flagged line by line, and
that answer is what the screens show. Cart requests go one at a time (a lane), so answers arrive
in the order the changes were made. A quantity being changed is shown at once and sent in the
background; presses that come faster than the server answers are folded into the last one.

The model publishes every change on :attr:`CartModel.updates`; it runs its requests as workers
of the app it is given, tells failures through the app, and never pushes a screen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.signal import Signal

from protocol import commerce_client
from protocol.checkout import CheckoutOnce, PendingCheckout
from protocol.client import ConnectionState, ConnectionStatus, Session
from protocol.errors import BadRequest
from protocol.messages.accounts import UserInfo
from protocol.messages.base import Event
from protocol.messages.commerce import Cart, CartChanged, CartLine, Order, OrderPlaced
from protocol.messages.live import ItemChanged, ItemRemoved


class CartModel:
    """The cart, the quantities on their way to the server, and checkout.

    Args:
        app: runs the background requests and tells the person what happened.
        session: the session to send with (raises :class:`~protocol.client.Offline` if none).
        report_failure: tells the person what went wrong, in words.
        user: who is logged in, to keep their checkout key under.
        keys_dir: the client config dir, where an unsettled checkout key is kept.
    """

    def __init__(
        self,
        app: App[Any],
        *,
        session: Callable[[], Session],
        report_failure: Callable[[BaseException], object],
        user: Callable[[], UserInfo | None],
        keys_dir: Path,
    ) -> None:
        self._app = app
        self._session = session
        self._report_failure = report_failure
        self._user = user
        self._keys_dir = keys_dir
        #: The cart as the server last told it; ``None`` until asked.
        self.cart: Cart | None = None
        #: Whether the server sells through a cart; ``None`` until known.
        self.sells: bool | None = None
        #: Published with the cart whenever it, or a quantity on its way, changes.
        self.updates: Signal[Cart] = Signal(app, "cart-updates")
        #: Published with each order placed from this app.
        self.orders_placed: Signal[Order] = Signal(app, "orders-placed")
        #: Whether a checkout is on its way.
        self.checking_out = False
        self._lane = asyncio.Lock()
        self._wanted: dict[int, int] = {}
        self._sending: dict[int, int] = {}
        self._removing: set[int] = set()
        self._quantities_running = False
        self._refresh_queued = False
        self._refresh_report = False
        self._was_connected = False
        self._purchase = CheckoutOnce(None, durable=False)

    # -- following the server ------------------------------------------------------------------

    def forget(self) -> None:
        """Drop the cart and whatever was on its way (after a logout)."""
        self.cart = None
        self.sells = None
        self._wanted.clear()
        self._sending.clear()
        self._removing.clear()
        self._purchase = CheckoutOnce(None, durable=False)

    def on_event(self, event: Event) -> None:
        """Follow server events that concern the cart: another device's change, or a change to
        an item in it (price, stock, deletion, made private), which the server re-flags."""
        if isinstance(event, CartChanged):
            self._set_cart(event.cart)
        elif isinstance(event, ItemChanged | ItemRemoved) and self.holds(event.item_id):
            self.request_refresh()

    def on_status(self, status: ConnectionStatus) -> None:
        """After a reconnect, fetch the cart again: the server forgot what this link watched."""
        connected = status.state is ConnectionState.CONNECTED
        if connected and not self._was_connected and self.cart is not None:
            self.request_refresh()
        self._was_connected = connected

    # -- the cart as shown ---------------------------------------------------------------------

    @property
    def units(self) -> int:
        """Units in the cart as the server last told it (0 until asked)."""
        return self.cart.units if self.cart is not None else 0

    def holds(self, item_id: int) -> bool:
        """Whether the cart has a line of this item."""
        return self.cart is not None and any(line.item_id == item_id for line in self.cart.lines)

    def quantity(self, line: CartLine) -> int:
        """The units a line shows: the one asked for last, even before the server answered."""
        return self._wanted.get(line.item_id, self._sending.get(line.item_id, line.quantity))

    def pending(self, item_id: int) -> bool:
        """Whether a change to this line is on its way to the server."""
        return item_id in self._wanted or item_id in self._sending or item_id in self._removing

    @property
    def removing(self) -> frozenset[int]:
        """The lines on their way out of the cart."""
        return frozenset(self._removing)

    @property
    def busy(self) -> bool:
        """Whether any cart change is on its way to the server."""
        return bool(self._wanted or self._sending or self._removing)

    def _set_cart(self, cart: Cart) -> None:
        self.cart = cart
        self.sells = True
        self.updates.publish(cart)

    def _publish(self) -> None:
        if self.cart is not None:
            self.updates.publish(self.cart)

    # -- reading the cart ----------------------------------------------------------------------

    async def refresh(self, *, report: bool = False) -> None:
        """Ask the server for the cart (this also has the link hear about its changes).

        Args:
            report: tell the person if it fails (otherwise the cart stays as it was, quietly).
        """
        async with self._lane:
            self._refresh_queued = False
            report = report or self._refresh_report
            self._refresh_report = False
            try:
                cart = await commerce_client.get_cart(self._session())
            except BadRequest:
                # Only a server that does not know the request refuses to show a cart.
                self.sells = False
                self.updates.publish(Cart())
                return
            except Exception as exc:
                if report:
                    self._report_failure(exc)
                return
            self._set_cart(cart)

    def request_refresh(self, *, report: bool = False) -> None:
        """Fetch the cart in the background; requests made before it starts are folded in."""
        self._refresh_report = self._refresh_report or report
        if self._refresh_queued:
            return
        self._refresh_queued = True
        self._app.run_worker(self._queued_refresh(), group="cart-refresh")

    async def _queued_refresh(self) -> None:
        if self._refresh_queued:
            await self.refresh()

    # -- changing the cart ---------------------------------------------------------------------

    async def add(self, item_id: int, quantity: int = 1) -> None:
        """Put an item in the cart and say so."""
        app = self._app
        async with self._lane:
            try:
                cart = await commerce_client.add_to_cart(self._session(), item_id, quantity)
            except BadRequest as exc:
                if self.sells is False:
                    app.notify("This server does not sell through a cart.", severity="warning")
                else:
                    app.notify(exc.message, severity="warning", markup=False)
                return
            except Exception as exc:
                self._report_failure(exc)
                return
            self._set_cart(cart)
        line = next((line for line in cart.lines if line.item_id == item_id), None)
        title = f"“{line.title}”" if line is not None else "The item"
        app.notify(f"{title} is in the cart ({cart.units} in all).", timeout=3, markup=False)

    def set_quantity(self, item_id: int, quantity: int) -> None:
        """Want ``quantity`` units of a line: shown at once, sent in the background."""
        self._wanted[item_id] = quantity
        self._publish()
        if not self._quantities_running:
            self._quantities_running = True
            self._app.run_worker(self._send_quantities(), group="cart-quantities")

    async def _send_quantities(self) -> None:
        try:
            async with self._lane:
                while self._wanted:
                    item_id, quantity = next(iter(self._wanted.items()))
                    del self._wanted[item_id]
                    self._sending[item_id] = quantity
                    try:
                        session = self._session()
                        cart = await commerce_client.set_quantity(session, item_id, quantity)
                    except Exception as exc:
                        self._sending.pop(item_id, None)
                        self._report_failure(exc)
                        self.request_refresh()  # show what the server holds
                        self._publish()
                        continue
                    self._sending.pop(item_id, None)
                    self._set_cart(cart)
        finally:
            self._quantities_running = False

    async def remove(self, item_id: int) -> None:
        """Take an item out of the cart (the line shows as going until the server agrees)."""
        self._wanted.pop(item_id, None)
        self._removing.add(item_id)
        self._publish()
        try:
            async with self._lane:
                cart = await commerce_client.remove_from_cart(self._session(), item_id)
                self._set_cart(cart)
        except Exception as exc:
            self._report_failure(exc)
        finally:
            self._removing.discard(item_id)
            self._publish()

    async def clear(self) -> bool:
        """Empty the cart; returns whether it worked (a failure is told in words)."""
        self._wanted.clear()
        try:
            async with self._lane:
                cart = await commerce_client.clear_cart(self._session())
                self._set_cart(cart)
        except Exception as exc:
            self._report_failure(exc)
            return False
        return True

    # -- checkout ------------------------------------------------------------------------------

    async def checkout(self, expected_total_cents: int) -> OrderPlaced:
        """Buy the cart at the total the person confirmed, never twice
        (see :class:`~protocol.checkout.CheckoutOnce`; the key is shared with
        ``pixmart checkout``).

        Raises:
            OutOfStock: some lines lack stock; ``checkout_failures`` says which.
            Conflict: lines were deleted or made private, or the total changed.
            BadRequest: the cart is empty.
            PixmartError: anything else; the key is kept, so trying again is safe.
        """
        self.checking_out = True
        self._publish()
        try:
            async with self._lane:
                session = self._session()
                self._purchase.pending = self._pending_checkout(session)
                placed = await self._purchase.checkout(session, expected_total_cents)
                if not placed.replayed:
                    self._set_cart(Cart())
        finally:
            self.checking_out = False
            self._publish()
        self.orders_placed.publish(placed.order)
        # A replayed order leaves the cart as it is now; either way, show the server's cart.
        self.request_refresh()
        return placed

    def _pending_checkout(self, session: Session) -> PendingCheckout | None:
        user = session.user or self._user()
        if user is None:
            return None
        return PendingCheckout(self._keys_dir, session.url, user.username)


__all__ = ["CartModel"]
