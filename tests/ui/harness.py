"""Provides :class:`HarnessApp`: a small app that satisfies :class:`~tui.context.ShopContext`, to
mount one widget in without the whole client (as harlequin tests its components).

It has no server: asking it for a session raises :class:`~protocol.client.Offline`, and what a
widget asks of it (open an item, find look-alikes, go somewhere, report a failure) is recorded for
the test to look at.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image
from textual import on
from textual.app import App, ComposeResult
from textual.reactive import reactive
from textual.signal import Signal
from textual.widget import Widget

from protocol.client import Offline, Session
from protocol.messages.accounts import UserInfo
from protocol.messages.base import Event
from protocol.messages.catalogue import ItemCard, ListingFilters
from tui.context import ShopContext
from tui.data.cart import CartModel
from tui.data.favourites import FavouritesModel
from tui.data.gallery_cache import GalleryCache
from tui.data.inbox import InboxModel
from tui.data.thumbnails import PictureCache
from tui.link import LinkListeners, ServerLink
from tui.store import ClientStore
from tui.widgets.card_grid import CardGrid

ADA = UserInfo(id=1, username="ada")


def _ignore(*_: object) -> None:
    """A listener that has nothing to do: the harness has no session to listen to."""


class HarnessApp(App[None]):
    """Mounts the widget ``make`` builds and provides what widgets may ask of an app.

    Args:
        make: builds the widget under test (called in ``compose``).
        root: a folder of the test's own, for the store and the upload root.
        currency: the currency the pretend server sells in.
    """

    #: The inbox's unread count, which a screen's header shows.
    unread_count: reactive[int] = reactive(0)

    def __init__(self, make: Callable[[], Widget], *, root: Path, currency: str = "USD") -> None:
        super().__init__()
        self._make = make
        self.store = ClientStore(root / "config")
        self.link = ServerLink(None, LinkListeners(_ignore, _ignore, _ignore))
        self.server_url: str | None = None
        self.server_known = False
        self.user: UserInfo | None = ADA
        self.currency = currency
        self.has_vision = False
        self.listing_batch: int | None = None
        self.upload_root = root
        self.server_events: Signal[Event] = Signal(self, "server-events")
        self.pictures = PictureCache(capacity=64)
        self.gallery_cache = GalleryCache(self, root / "cache")
        self.cart = CartModel(
            self,
            session=self.require_session,
            report_failure=self.report_failure,
            user=lambda: self.user,
            keys_dir=self.store.root,
        )
        self.inbox = InboxModel(
            self, session=self.require_session, report_failure=self.report_failure
        )
        self.favourites = FavouritesModel(
            self, session=self.require_session, report_failure=self.report_failure
        )
        #: What widgets asked for, in order.
        self.failures: list[BaseException] = []
        self.opened: list[ItemCard] = []
        self.similar: list[int] = []
        self.went: list[str] = []
        self.watched: list[int] = []

    def compose(self) -> ComposeResult:
        yield self._make()

    def require_session(self) -> Session:
        raise Offline("A harness has no server")

    def report_failure(self, exc: BaseException) -> str:
        self.failures.append(exc)
        return str(exc)

    def connect_in_background(self, url: str) -> None:
        self.server_url = url

    async def watch_items(self, item_ids: Sequence[int]) -> None:
        self.watched.extend(item_ids)

    async def go(self, mode: str) -> None:
        self.went.append(mode)

    def open_item(self, card: ItemCard) -> None:
        self.opened.append(card)

    def find_similar(
        self, item_id: int, *, title: str = "", thumbnail: bytes | None = None
    ) -> None:
        self.similar.append(item_id)

    def search_by_picture(self, path: Path, filters: ListingFilters | None = None) -> None:
        raise AssertionError("no widget searches by picture on its own")

    @on(CardGrid.Opened)
    def _card_opened(self, message: CardGrid.Opened) -> None:
        self.open_item(message.card)


def as_context(app: HarnessApp) -> ShopContext:
    """The harness, typed as what widgets see (mypy checks that it satisfies the protocol)."""
    return app


def thumbnail(colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A small JPEG, as the server sends thumbnails."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, "JPEG")
    return out.getvalue()


def card(item_id: int, **changes: object) -> ItemCard:
    """An item card with a picture; ``changes`` override fields."""
    fields: dict[str, object] = {
        "id": item_id,
        "title": f"Item {item_id}",
        "price_cents": 100 * item_id + 50,
        "stock": 3,
        "public": True,
        "owner_id": 1,
        "owner_name": "ada",
        "tags": [],
        "width": 32,
        "height": 24,
        "created_at": 0.0,
        "thumbnail": thumbnail(),
    }
    fields.update(changes)
    return ItemCard(**fields)  # type: ignore[arg-type]


__all__ = ["ADA", "HarnessApp", "as_context", "card", "thumbnail"]
