"""Provides :class:`SimilarStrip`: a row of the few items that look most like one item.

Small cards (picture, title, ``93% similar``) in a compact :class:`CardGrid`, so they move and
open like every other card: arrows move, Enter opens (:class:`CardGrid.Opened` reaches the
screen). The strip stays hidden until it has something to show.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label

from protocol.messages.catalogue import ItemCard
from tui.context import ShopNode
from tui.widgets.card_grid import COMPACT_TILE_HEIGHT, CardGrid

#: How many look-alikes the strip shows.
STRIP_ITEMS = 6


class SimilarStrip(ShopNode, Vertical):
    """``Looks like this`` and one row of small cards, hidden while empty."""

    BINDING_GROUP_TITLE = "Look-alikes"

    DEFAULT_CSS = f"""
    SimilarStrip {{
        display: none;
        height: auto;
        border-top: hkey $panel-lighten-1;
        &.-shown {{ display: block; }}
        #strip-title {{ padding: 0 2; width: 1fr; }}
        CardGrid {{ height: {COMPACT_TILE_HEIGHT}; }}
    }}
    """

    @property
    def grid(self) -> CardGrid:
        """The small cards."""
        return self.query_one(CardGrid)

    def compose(self) -> ComposeResult:
        yield Label("Looks like this", id="strip-title", classes="section")
        app = self.pixmart
        yield CardGrid(cache=app.pictures, currency=app.currency, compact=True, id="strip-cards")

    async def show_items(self, items: list[ItemCard]) -> None:
        """Show ``items`` (best first); none hides the strip."""
        self.query_one("#strip-title", Label).update(
            Content("Looks like this · s shows every look-alike")
        )
        self.grid.currency = self.pixmart.currency
        await self.grid.set_items(items, reset=True)
        self.set_class(bool(items), "-shown")

    async def show_note(self, note: str) -> None:
        """Show only a line of words where the look-alikes would be (e.g. while warming up)."""
        self.query_one("#strip-title", Label).update(Content(note))
        await self.grid.set_items([], reset=True)
        self.set_class(True, "-shown")

    @on(CardGrid.EndReached)
    def _end_reached(self, message: CardGrid.EndReached) -> None:
        message.stop()  # the strip has all it will show


__all__ = ["STRIP_ITEMS", "SimilarStrip"]
