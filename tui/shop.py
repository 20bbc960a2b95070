"""Provides :class:`ShopHooks`: live catalogue updates, the cart and checkout, and vision hooks.

The screens call these instead of the protocol for everything beyond the catalogue, so the cart
(commerce) and similar-picture search (vision) plug in here as those parts of the server arrive:
the cart, its live updates, checkout and the header's cart count work with a commerce-enabled
server; ``find_similar`` and ``search_by_picture`` open the similar-picture results of a server
that runs the image model, and say so in words when it does not.

The cart is the server's: every change answers with the whole cart, flagged line by line, and that
answer is what the screens show. Cart requests go one at a time (a lane), so answers arrive in the
order the changes were made. A quantity being changed is shown at once and sent in the background;
presses that come faster than the server answers are folded into the last one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from textual.signal import Signal

from protocol import commerce_client
from protocol.catalogue_client import CatalogueWatch
from protocol.client import ConnectionState, ConnectionStatus, Session
from protocol.errors import BadRequest, Conflict, OutOfStock
from protocol.messages.base import Event
from protocol.messages.catalogue import ListingFilters
from protocol.messages.commerce import Cart, CartChanged, CartLine, Order, OrderPlaced
from protocol.messages.live import ItemChanged, ItemRemoved
from tui.commands.commerce import PendingCheckout
from tui.data.similar import SimilarQuery, load_query_picture, query_limits, search_filters

if TYPE_CHECKING:
    from tui.app import PixmartApp

#: Checkout errors that mean the server answered for certain and nothing was bought.
DEFINITE_REFUSALS = (OutOfStock, Conflict, BadRequest)


class ShopHooks:
    """What the app does for a logged-in person beyond showing screens.

    Args:
        app: the app whose session, notifications and cart count are used.
    """

    def __init__(self, app: PixmartApp) -> None:
        self.app = app
        #: Keeps the catalogue subscription alive across reconnects, once logged in.
        self.catalogue_watch: CatalogueWatch | None = None
        #: The cart as the server last told it; ``None`` until asked.
        self.cart: Cart | None = None
        #: Whether the server sells through a cart; ``None`` until known.
        self.sells: bool | None = None
        #: Published with the cart whenever it, or a quantity on its way, changes.
        self.cart_updates: Signal[Cart] = Signal(app, "cart-updates")
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
        self._checkout_key: str | None = None

    # -- live updates --------------------------------------------------------------------------

    async def follow(self, session: Session) -> None:
        """Subscribe to catalogue events and learn the cart's size (both best effort)."""
        if self.catalogue_watch is None:
            self.catalogue_watch = CatalogueWatch(session)
        try:
            await self.catalogue_watch.watch_catalogue()
        except Exception:
            pass  # the screens work without live updates
        await self.refresh_cart()

    async def watch_items(self, item_ids: list[int]) -> None:
        """Also hear about these items (e.g. the one on screen), across reconnects."""
        if self.catalogue_watch is not None:
            try:
                await self.catalogue_watch.watch_items(item_ids)
            except Exception:
                pass  # live updates are a nicety; the screen works without them

    def forget(self) -> None:
        """Drop the subscriptions, the cart and its count (after a logout)."""
        self.catalogue_watch = None
        self.cart = None
        self.sells = None
        self._wanted.clear()
        self._sending.clear()
        self._removing.clear()
        self._checkout_key = None
        self.app.cart_count = 0

    def on_event(self, event: Event) -> None:
        """Follow server events that concern the cart: another device's change, or a change to
        an item in it (price, stock, deletion, made private), which the server re-flags."""
        if isinstance(event, CartChanged):
            self._set_cart(event.cart)
        elif isinstance(event, ItemChanged | ItemRemoved) and self.holds(event.item_id):
            self.request_cart_refresh()

    def on_status(self, status: ConnectionStatus) -> None:
        """After a reconnect, fetch the cart again: the server forgot what this link watched."""
        connected = status.state is ConnectionState.CONNECTED
        if connected and not self._was_connected and self.cart is not None:
            self.request_cart_refresh()
        self._was_connected = connected

    # -- the cart as shown ---------------------------------------------------------------------

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
        self.app.cart_count = cart.units
        self.cart_updates.publish(cart)

    def _publish(self) -> None:
        if self.cart is not None:
            self.cart_updates.publish(self.cart)

    # -- reading the cart ----------------------------------------------------------------------

    async def refresh_cart(self, *, report: bool = False) -> None:
        """Ask the server for the cart (this also has the link hear about its changes).

        Args:
            report: tell the person if it fails (otherwise the cart stays as it was, quietly).
        """
        async with self._lane:
            self._refresh_queued = False
            report = report or self._refresh_report
            self._refresh_report = False
            try:
                cart = await commerce_client.get_cart(self.app.require_session())
            except BadRequest:
                # Only a server that does not know the request refuses to show a cart.
                self.sells = False
                self.cart_updates.publish(Cart())
                return
            except Exception as exc:
                if report:
                    self.app.report_failure(exc)
                return
            self._set_cart(cart)

    def request_cart_refresh(self, *, report: bool = False) -> None:
        """Fetch the cart in the background; requests made before it starts are folded in."""
        self._refresh_report = self._refresh_report or report
        if self._refresh_queued:
            return
        self._refresh_queued = True
        self.app.run_worker(self._queued_refresh(), group="cart-refresh")

    async def _queued_refresh(self) -> None:
        if self._refresh_queued:
            await self.refresh_cart()

    # -- changing the cart ---------------------------------------------------------------------

    async def add_to_cart(self, item_id: int, quantity: int = 1) -> None:
        """Put an item in the cart, update the count and say so."""
        app = self.app
        async with self._lane:
            try:
                cart = await commerce_client.add_to_cart(app.require_session(), item_id, quantity)
            except BadRequest as exc:
                if self.sells is False:
                    app.notify("This server does not sell through a cart.", severity="warning")
                else:
                    app.notify(exc.message, severity="warning", markup=False)
                return
            except Exception as exc:
                app.report_failure(exc)
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
            self.app.run_worker(self._send_quantities(), group="cart-quantities")

    async def _send_quantities(self) -> None:
        try:
            async with self._lane:
                while self._wanted:
                    item_id, quantity = next(iter(self._wanted.items()))
                    del self._wanted[item_id]
                    self._sending[item_id] = quantity
                    try:
                        session = self.app.require_session()
                        cart = await commerce_client.set_quantity(session, item_id, quantity)
                    except Exception as exc:
                        self._sending.pop(item_id, None)
                        self.app.report_failure(exc)
                        self.request_cart_refresh()  # show what the server holds
                        self._publish()
                        continue
                    self._sending.pop(item_id, None)
                    self._set_cart(cart)
        finally:
            self._quantities_running = False

    async def remove_line(self, item_id: int) -> None:
        """Take an item out of the cart (the line shows as going until the server agrees)."""
        self._wanted.pop(item_id, None)
        self._removing.add(item_id)
        self._publish()
        try:
            async with self._lane:
                cart = await commerce_client.remove_from_cart(self.app.require_session(), item_id)
                self._set_cart(cart)
        except Exception as exc:
            self.app.report_failure(exc)
        finally:
            self._removing.discard(item_id)
            self._publish()

    async def clear_cart(self) -> bool:
        """Empty the cart; returns whether it worked (a failure is told in words)."""
        self._wanted.clear()
        try:
            async with self._lane:
                cart = await commerce_client.clear_cart(self.app.require_session())
                self._set_cart(cart)
        except Exception as exc:
            self.app.report_failure(exc)
            return False
        return True

    # -- checkout ------------------------------------------------------------------------------

    async def checkout(self, expected_total_cents: int) -> OrderPlaced:
        """Buy the cart at the total the person confirmed.

        The checkout key is made once per purchase, kept on disk (shared with ``pixmart
        checkout``) and sent again by every retry until the server answers for certain: with the
        order, or with an error that says nothing was bought. A retry after a drop or a crash thus
        returns the first attempt's order instead of placing a second one.

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
                session = self.app.require_session()
                pending = self._pending_checkout(session)
                key = await self._key_for(pending)
                try:
                    placed = await commerce_client.checkout(
                        session, expected_total_cents=expected_total_cents, checkout_key=key
                    )
                except DEFINITE_REFUSALS:
                    await self._settle(pending)
                    raise
                await self._settle(pending)
                if not placed.replayed:
                    self._set_cart(Cart())
        finally:
            self.checking_out = False
            self._publish()
        self.orders_placed.publish(placed.order)
        # A replayed order leaves the cart as it is now; either way, show the server's cart.
        self.request_cart_refresh()
        return placed

    def _pending_checkout(self, session: Session) -> PendingCheckout | None:
        user = session.user or self.app.user
        if user is None:
            return None
        return PendingCheckout(self.app.store.root, session.url, user.username)

    async def _key_for(self, pending: PendingCheckout | None) -> str:
        """The key of this purchase: the one kept from an unsettled attempt, or a new one."""
        if self._checkout_key is not None:
            return self._checkout_key
        key: str | None = None
        if pending is not None:
            try:
                key = await asyncio.to_thread(pending.load) or await asyncio.to_thread(
                    pending.create
                )
            except OSError:
                key = None  # no config dir to keep it in: kept in memory only
        self._checkout_key = key or commerce_client.new_checkout_key()
        return self._checkout_key

    async def _settle(self, pending: PendingCheckout | None) -> None:
        """Forget the key: the server said for certain what became of it."""
        self._checkout_key = None
        if pending is not None:
            try:
                await asyncio.to_thread(pending.settle)
            except OSError:
                pass  # a stale file only makes the next checkout ask about the old key first

    # -- vision --------------------------------------------------------------------------------

    def _has_vision(self, doing: str) -> bool:
        """Whether the server runs the image model; if not, say it cannot do ``doing``."""
        if self.app.has_vision:
            return True
        self.app.notify(f"This server has no image model, so it cannot {doing}.")
        return False

    def find_similar(
        self, item_id: int, *, title: str = "", thumbnail: bytes | None = None
    ) -> None:
        """Show every item that looks like ``item_id``, best first (needs the image model).

        Args:
            title: the item's title, to name it on the results.
            thumbnail: its picture, shown beside the results.
        """
        if not self._has_vision("find similar items"):
            return
        from tui.screens.similar import SimilarScreen  # here: the screens import this module

        label = f"“{title}”" if title else f"item #{item_id}"
        query = SimilarQuery(item_id=item_id, label=label)
        self.app.push_screen(SimilarScreen(query, example=thumbnail))

    def search_by_picture(self, path: Path, filters: ListingFilters | None = None) -> None:
        """Show the items that look like a picture file of the person's, best first.

        The file is read (and shrunk, should the server refuse it as it is) in the background.

        Args:
            filters: tags, price range and stock to hold too (words do not apply).
        """
        if not self._has_vision("search by picture"):
            return
        self.app.run_worker(
            self._search_by_picture(path, search_filters(filters or ListingFilters())),
            group="search-by-picture",
            exclusive=True,
        )

    async def _search_by_picture(self, path: Path, filters: ListingFilters) -> None:
        app = self.app
        session = app.link.session
        max_bytes, max_pixels = query_limits(session.capabilities if session else None)
        try:
            picture = await asyncio.to_thread(
                load_query_picture, path, max_bytes=max_bytes, max_pixels=max_pixels
            )
        except ValueError as exc:
            app.notify(str(exc), title="Search by picture", severity="warning", markup=False)
            return
        from tui.screens.similar import SimilarScreen  # here: the screens import this module

        query = SimilarQuery(filters, label=path.name, picture=picture)
        await app.push_screen(SimilarScreen(query, example=picture))


__all__ = ["DEFINITE_REFUSALS", "ShopHooks"]
