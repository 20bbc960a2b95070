"""Provides :class:`FavouritesScreen`: the items the person keeps, as a grid of cards.

The gallery's card grid and status line (:class:`CatalogueView`) fed by a
:class:`~tui.data.favourites.FavouritesQuery`: newest first, a batch at a time. A favourite whose
item was deleted or turned private shows as a card without a picture that says so; opening it
explains, and ``f`` drops it like any other.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult

from protocol.messages.favourites import FavouriteStatus
from tui.data.favourites import FavouritesListing, FavouritesQuery
from tui.screens.base import PixmartScreen
from tui.widgets.catalogue_view import CatalogueView

EMPTY_TEXT = (
    "You keep no favourites yet.\n\n"
    "Press f on any card or item to keep it here, and hear in your inbox when it gets cheaper "
    "or comes back in stock."
)


class FavouritesScreen(PixmartScreen):
    """Cards of the person's favourites, newest first."""

    TITLE = "Favourites"

    def __init__(self) -> None:
        super().__init__()
        self._left = False
        #: The favourites' ids when the cards were last loaded.
        self._kept: frozenset[int] = frozenset()

    def compose_body(self) -> ComposeResult:
        yield CatalogueView(id="favourites-view", empty_text=EMPTY_TEXT)

    @property
    def view(self) -> CatalogueView:
        """The cards."""
        return self.query_one(CatalogueView)

    async def on_mount(self) -> None:
        self.pixmart.favourites.updates.subscribe(self, self._favourites_changed)
        self._kept = self.pixmart.favourites.ids
        self.view.grid.focus()
        await self.view.load(FavouritesQuery())

    async def on_screen_resume(self) -> None:
        if self._left:
            # Kept or dropped elsewhere meanwhile (a card on another screen, another device).
            await self.view.load(FavouritesQuery())
        self.view.grid.focus()

    def on_screen_suspend(self) -> None:
        self._left = True

    async def _favourites_changed(self, ids: frozenset[int]) -> None:
        listing = self.view.listing
        if listing is None or not self.is_current:
            return
        dropped = any(card.id not in ids for card in listing.items)
        added = bool(ids - self._kept)
        self._kept = ids
        if dropped or added:
            await self.view.load(FavouritesQuery())

    @on(CatalogueView.Opened)
    def _open_item(self, message: CatalogueView.Opened) -> None:
        message.stop()
        listing = self.view.listing
        gone = listing.gone.get(message.card.id) if isinstance(listing, FavouritesListing) else None
        if gone is FavouriteStatus.DELETED:
            self.notify("Its seller deleted this item. Press f to drop it.", timeout=4)
        elif gone is FavouriteStatus.PRIVATE:
            self.notify("This item is no longer available. Press f to drop it.", timeout=4)
        else:
            self.pixmart.open_item(message.card)


__all__ = ["FavouritesScreen"]
