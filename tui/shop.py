"""Provides :class:`ShopHooks`: live catalogue updates and the hooks for commerce and vision.

The screens call these instead of the protocol for everything beyond the catalogue, so the cart
(commerce) and similar-picture search (vision) plug in here as those parts of the server arrive:
``add_to_cart`` and the header's cart count already work with a commerce-enabled server;
``find_similar`` and ``search_by_picture`` say what is missing until vision lands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from protocol import commerce_client
from protocol.catalogue_client import CatalogueWatch
from protocol.client import Session
from protocol.errors import BadRequest
from protocol.messages.base import Event
from protocol.messages.commerce import CartChanged

if TYPE_CHECKING:
    from tui.app import PixmartApp


class ShopHooks:
    """What the app does for a logged-in person beyond showing screens.

    Args:
        app: the app whose session, notifications and cart count are used.
    """

    def __init__(self, app: PixmartApp) -> None:
        self.app = app
        #: Keeps the catalogue subscription alive across reconnects, once logged in.
        self.catalogue_watch: CatalogueWatch | None = None

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
        """Drop the subscriptions and the cart count (after a logout)."""
        self.catalogue_watch = None
        self.app.cart_count = 0

    def on_event(self, event: Event) -> None:
        """Follow server events that concern the whole app (the cart of another device)."""
        if isinstance(event, CartChanged):
            self.app.cart_count = event.cart.units

    # -- commerce ------------------------------------------------------------------------------

    async def refresh_cart(self) -> None:
        """Ask the server for the cart and show its size in the header."""
        try:
            cart = await commerce_client.get_cart(self.app.require_session())
        except Exception:
            return  # a server without commerce: the count stays as it is
        self.app.cart_count = cart.units

    async def add_to_cart(self, item_id: int, quantity: int = 1) -> None:
        """Put an item in the cart, update the count and say so."""
        app = self.app
        try:
            cart = await commerce_client.add_to_cart(app.require_session(), item_id, quantity)
        except BadRequest:
            app.notify("This server does not sell through a cart yet.", severity="warning")
            return
        except Exception as exc:
            app.report_failure(exc)
            return
        app.cart_count = cart.units
        line = next((line for line in cart.lines if line.item_id == item_id), None)
        title = f"“{line.title}”" if line is not None else "The item"
        app.notify(f"{title} is in the cart ({cart.units} in all).", timeout=3)

    # -- vision --------------------------------------------------------------------------------

    def find_similar(self, item_id: int) -> None:
        """Show items that look like ``item_id`` (needs the server's image model)."""
        if not self.app.has_vision:
            self.app.notify("This server has no image model, so it cannot find similar items.")
            return
        self.app.notify("Similar items come with the vision release of pixmart.")

    def search_by_picture(self, path: Path | None = None) -> None:
        """Find items that look like a picture of the person's (needs the image model)."""
        del path  # the picture to search with, once the vision protocol exists
        if not self.app.has_vision:
            self.app.notify("This server has no image model, so it cannot search by picture.")
            return
        self.app.notify("Search by picture comes with the vision release of pixmart.")


__all__ = ["ShopHooks"]
