"""Provides :class:`CatalogueView`: a listing shown as a card grid, with a status line.

It fetches the first batch when given a query and each next one only when the person reaches
the end of what is loaded (or presses ``n``), and keeps the items current from live events. It
can also start from saved cards (:meth:`CatalogueView.show_saved`, a warm reopen) and update them
in place once the server answers (:meth:`CatalogueView.refresh_in_place`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static

from protocol.messages.base import Event
from protocol.messages.catalogue import ItemCard, PictureMode
from protocol.messages.live import ItemAdded, ItemChanged, ItemRemoved
from tui.context import ShopNode
from tui.data.listing import Listing, ListingQuery
from tui.data.numbers import format_count
from tui.widgets.batch_fetch import fetch_next_batch
from tui.widgets.card_grid import CardGrid


class CatalogueView(ShopNode, Vertical):
    """Cards of one listing, a status line (``48 of 1,203 · tags: cat``) and an empty state.

    Args:
        empty_text: what to say when nothing matches.
        live_additions: count items added by others and offer a refresh (the gallery does).
    """

    BINDING_GROUP_TITLE = "Listing"

    DEFAULT_CSS = """
    CatalogueView {
        height: 1fr;
        #listing-empty {
            display: none;
            height: 1fr;
            width: 1fr;
            content-align: center middle;
            text-align: center;
            color: $text-muted;
        }
        &.-empty #listing-empty { display: block; }
        &.-empty CardGrid { display: none; }
        #listing-status-line { height: 1; padding: 0 2; background: $boost; }
        #listing-status { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #listing-hint { width: auto; color: $text-muted; }
    }
    """

    BINDINGS = [
        Binding(
            "n",
            "more",
            "More",
            id="listing.more",
            tooltip="Fetch the next batch of items now",
        ),
        Binding(
            "r",
            "reload",
            "Refresh",
            id="listing.reload",
            show=False,
            tooltip="Load the listing afresh",
        ),
    ]

    @dataclass
    class Opened(Message):
        """The person opened an item of the listing."""

        view: CatalogueView
        card: ItemCard

    @dataclass
    class Loaded(Message):
        """A batch arrived (or the listing changed); ``listing`` is the current state."""

        view: CatalogueView
        listing: Listing

    def __init__(
        self,
        *,
        empty_text: str = "No items match.",
        live_additions: bool = False,
        expected_grid_size: Callable[[Size], Size] | None = None,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        #: The card grid's content size in a terminal of a given size (see
        #: :attr:`CardGrid.expected_size`): its tiles then exist before the first layout.
        self.expected_grid_size = expected_grid_size
        self.empty_text = empty_text
        self.live_additions = live_additions
        self.listing: Listing | None = None
        self.fetching = False
        self.added_since_load = 0

    @property
    def grid(self) -> CardGrid:
        """The card grid."""
        return self.query_one(CardGrid)

    def compose(self) -> ComposeResult:
        app = self.pixmart
        yield CardGrid(
            cache=app.pictures,
            currency=app.currency,
            expected_size=self.expected_grid_size,
            id="cards",
        )
        yield Static(Content(self.empty_text), id="listing-empty")
        with Horizontal(id="listing-status-line"):
            yield Static("", id="listing-status")
            yield Static("", id="listing-hint")

    def on_mount(self) -> None:
        app = self.pixmart
        app.server_events.subscribe(self, self._server_event)
        # Cards of favourites are marked, and follow as the person keeps or drops one.
        self.grid.favourite = app.favourites.holds
        app.favourites.updates.subscribe(self, self._favourites_changed)

    async def _favourites_changed(self, _ids: frozenset[int]) -> None:
        try:
            grid = self.grid
        except NoMatches:
            return  # being taken down
        await grid.refresh_tiles()

    # -- loading -------------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        """Show ``text`` where the cards go (e.g. before the first search)."""
        self.query_one("#listing-empty", Static).update(Content(text))
        self.set_class(True, "-empty")

    async def load(self, query: ListingQuery) -> None:
        """Show ``query``'s listing from its first batch (a similar-picture query's too)."""
        self.query_one("#listing-empty", Static).update(Content(self.empty_text))
        self.listing = query.listing(self.pixmart.listing_batch)
        self.added_since_load = 0
        self.grid.currency = self.pixmart.currency
        await self.grid.set_items(self.listing.items, reset=True)
        self.set_class(False, "-empty")
        self._fetch()

    async def show_saved(
        self, query: ListingQuery, cards: list[ItemCard], total: int | None
    ) -> None:
        """Show saved ``cards`` of ``query`` at once, without asking the server.

        They stay until :meth:`refresh_in_place` (or any fetch) replaces them with the server's
        first batch.
        """
        self.query_one("#listing-empty", Static).update(Content(self.empty_text))
        self.listing = query.listing(self.pixmart.listing_batch)
        self.listing.preload(cards, total)
        self.added_since_load = 0
        self.grid.currency = self.pixmart.currency
        await self.grid.set_items(self.listing.items, reset=True)
        self.set_class(not cards, "-empty")
        self._show_status()

    def refresh_in_place(self, pictures: PictureMode = PictureMode.UNSENT) -> None:
        """Ask for the listing's first batch and update the saved cards where they stand.

        Args:
            pictures: how the batch's thumbnails come; :attr:`PictureMode.HASHES` when the
                picture cache holds most of them (the saved cards' own).
        """
        listing = self.listing
        if listing is None or not listing.provisional:
            return
        listing.picture_mode = pictures
        self._fetch()

    def action_more(self) -> None:
        """Fetch the next batch, unless one is on its way or the listing is complete."""
        if self.listing is not None and not self.fetching and not self.listing.exhausted:
            self._fetch()

    def action_reload(self) -> None:
        """Load the listing afresh (new items, new order), in place.

        The cards stay on screen until the first batch replaces them, so a refresh never
        flashes an empty grid, and one that fails (offline) leaves them browsable.
        """
        listing = self.listing
        if listing is not None and (listing.started or listing.provisional):
            listing.provisional = True
            self.added_since_load = 0
            self._fetch()

    @work(exclusive=True, group="listing")
    async def _fetch(self) -> None:
        listing = self.listing
        if listing is None:
            return
        # A saved listing's cards are replaced by the server's: keep the highlight on its item.
        reconciling = listing.provisional
        highlighted = self.grid.current.id if reconciling and self.grid.current else None
        added = await fetch_next_batch(
            self,
            lambda: listing.fetch_next(self.pixmart.require_session()),
            lambda: listing is self.listing,
        )
        if added is None:
            return
        try:
            grid = self.grid
        except NoMatches:
            return  # the view was taken down while the batch was on its way
        if reconciling:
            position = listing.index_of(highlighted) if highlighted is not None else None
            grid.set_reactive(CardGrid.highlight, position or 0)
        await grid.refresh_tiles()
        self.set_class(listing.exhausted and not listing.items, "-empty")
        self._show_status()
        self.post_message(self.Loaded(self, listing))

    @on(CardGrid.EndReached)
    def _end_reached(self, message: CardGrid.EndReached) -> None:
        message.stop()
        self.action_more()

    @on(CardGrid.Opened)
    def _opened(self, message: CardGrid.Opened) -> None:
        message.stop()
        self.post_message(self.Opened(self, message.card))

    @on(CardGrid.Highlighted)
    def _highlighted(self, message: CardGrid.Highlighted) -> None:
        message.stop()
        self._show_status()

    # -- live updates --------------------------------------------------------------------------

    async def _server_event(self, event: Event) -> None:
        listing = self.listing
        if listing is None:
            return
        if isinstance(event, ItemChanged):
            position = listing.apply_change(event)
            if position is not None and position in self.grid.window:
                await self.grid.refresh_tiles()
        elif isinstance(event, ItemRemoved):
            position = listing.remove(event.item_id)
            if position is not None:
                if position < self.grid.highlight:
                    self.grid.set_reactive(CardGrid.highlight, self.grid.highlight - 1)
                await self.grid.refresh_tiles()
                self.set_class(listing.exhausted and not listing.items, "-empty")
                self._show_status()
        elif isinstance(event, ItemAdded) and self.live_additions:
            self.added_since_load += 1
            self._show_status()

    # -- status --------------------------------------------------------------------------------

    def _show_status(self) -> None:
        listing = self.listing
        try:
            status = self.query_one("#listing-status", Static)
            hint = self.query_one("#listing-hint", Static)
        except NoMatches:
            return  # the view is being taken down
        if listing is None:
            return
        loaded = len(listing)
        if listing.total is None:
            text = "loading…" if self.fetching else ""
        else:
            text = f"{format_count(loaded)} of {format_count(listing.total)}"
            described = listing.query.describe()
            if described:
                text += f" · {described}"
            if self.fetching:
                text += " · loading more…"
        if self.added_since_load:
            text += f" · {self.added_since_load} new (r to refresh)"
        status.update(Content(text))
        parts: list[str] = []
        if self.grid.current is not None:
            parts.append(f"item {self.grid.highlight + 1}")
        if listing.exhausted:
            parts.append("end of the list" if loaded else "")
        elif listing.started:
            parts.append("n or the last row loads more")
        hint.update(Content(" · ".join(p for p in parts if p)))


__all__ = ["CatalogueView"]
