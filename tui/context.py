"""Provides :class:`ShopContext`: what a screen or widget may ask of the app it runs in.

Screens and widgets depend on this small protocol, never on the concrete App: the App satisfies
it (and owns navigation), and a test mounts a widget in a small harness app that satisfies it
too. A :class:`ShopNode` reaches it as ``self.pixmart``; :func:`shop_context` gives any node its
app as a :class:`ShopContext`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from textual.message_pump import MessagePump
from textual.signal import Signal

from protocol.client import Session
from protocol.messages.accounts import UserInfo
from protocol.messages.base import Event
from protocol.messages.catalogue import ItemCard, ListingFilters
from tui.data.cart import CartModel
from tui.data.favourites import FavouritesModel
from tui.data.gallery_cache import GalleryCache
from tui.data.inbox import InboxModel
from tui.data.thumbnails import PictureCache
from tui.link import ServerLink
from tui.store import ClientStore


@runtime_checkable
class ShopContext(Protocol):
    """The services of the app a screen or widget may use, and the navigation it may ask for."""

    # -- what the app knows --------------------------------------------------------------------

    @property
    def store(self) -> ClientStore:
        """Remembered servers, user names and tokens."""
        ...

    @property
    def link(self) -> ServerLink:
        """The one session with the server, opened on demand."""
        ...

    @property
    def server_url(self) -> str | None:
        """The server to connect to (given, remembered, or typed)."""
        ...

    @property
    def server_known(self) -> bool:
        """Whether the server came from the person or memory (then it is connected to at once)."""
        ...

    @property
    def user(self) -> UserInfo | None:
        """Who is logged in."""
        ...

    @property
    def currency(self) -> str:
        """The server's currency (ISO 4217)."""
        ...

    @property
    def has_vision(self) -> bool:
        """Whether the server runs the image model (similar items, search by picture)."""
        ...

    @property
    def listing_batch(self) -> int | None:
        """Items per listing batch; the server's default when ``None``."""
        ...

    @property
    def upload_root(self) -> Path:
        """Where the upload screen's file tree starts."""
        ...

    @property
    def server_events(self) -> Signal[Event]:
        """Server events (items added, changed, removed) for the screens that show items."""
        ...

    @property
    def pictures(self) -> PictureCache:
        """Decoded thumbnails, shared by every screen that shows cards."""
        ...

    @property
    def cart(self) -> CartModel:
        """The person's cart."""
        ...

    @property
    def inbox(self) -> InboxModel:
        """The person's inbox: its unread count, reading and clearing notices."""
        ...

    @property
    def favourites(self) -> FavouritesModel:
        """The items the person keeps as favourites."""
        ...

    @property
    def gallery_cache(self) -> GalleryCache:
        """Pictures on disk by hash and the last gallery, for the server in use."""
        ...

    # -- what the app does ---------------------------------------------------------------------

    def require_session(self) -> Session:
        """The session, connected at least once.

        Raises:
            Offline: there is no usable session.
        """
        ...

    def report_failure(self, exc: BaseException) -> str:
        """Tell the person what went wrong, in words; returns the words."""
        ...

    def connect_in_background(self, url: str) -> None:
        """Connect to ``url`` (resuming a saved session) without making anyone wait."""
        ...

    async def watch_items(self, item_ids: Sequence[int]) -> None:
        """Also hear about these items (e.g. the one on screen), across reconnects."""
        ...

    # -- navigation ----------------------------------------------------------------------------

    async def go(self, mode: str) -> None:
        """Go to a shop screen (``gallery``, ``search``, ``upload``, ``mine``, ``cart``,
        ``orders``, ``dashboard``, ``favourites``, ``inbox``)."""
        ...

    def open_item(self, card: ItemCard) -> None:
        """Show one item over the current screen."""
        ...

    def find_similar(
        self, item_id: int, *, title: str = "", thumbnail: bytes | None = None
    ) -> None:
        """Show the items that look like ``item_id``, best first (needs the image model)."""
        ...

    def search_by_picture(self, path: Path, filters: ListingFilters | None = None) -> None:
        """Show the items that look like a picture file of the person's, best first."""
        ...


class ShopNode(MessagePump):
    """A screen or widget that uses the shop context, as :attr:`pixmart`.

    Put it first among the bases: ``class CartScreen(ShopNode, Screen[None])``.
    """

    @property
    def pixmart(self) -> ShopContext:
        """The app, as what a screen or widget may ask of it."""
        return shop_context(self)


def shop_context(node: MessagePump) -> ShopContext:
    """The app ``node`` runs in, as the shop context it must satisfy.

    Raises:
        TypeError: the app does not satisfy :class:`ShopContext` (a test harness missing a part).
    """
    app = node.app
    if not isinstance(app, ShopContext):
        raise TypeError(f"{type(app).__name__} does not provide a ShopContext")
    return app


__all__ = ["ShopContext", "ShopNode", "shop_context"]
