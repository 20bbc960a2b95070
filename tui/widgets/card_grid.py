"""Provides :class:`CardGrid`: a virtualised, keyboard-driven grid of item cards with pictures.

Only the cards that fit on screen exist as widgets (a pool of tiles, re-filled as the window moves
over the items), so a listing of thousands scrolls as smoothly as one of ten, and only visible
cards decode and draw a picture. Decoded thumbnails are kept in a bounded LRU. Cards of
similar-picture results show their similarity (``93% similar``) on the frame; a compact grid
(small tiles: picture, title and similarity) serves as a strip of look-alikes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from protocol.messages.catalogue import ItemCard
from protocol.money import format_price
from tui.data.reasons import card_reason
from tui.data.thumbnails import PictureCache
from tui.widgets.picture import Picture

#: Seconds a tile waits before showing a card again when it was not composed yet.
_COMPOSE_WAIT: Final = 0.02

#: Cells per tile, border included; the grid stretches tiles to fill the width.
TILE_MIN_WIDTH = 24
TILE_HEIGHT = 12
#: The same for a compact grid (picture, title and similarity only).
COMPACT_TILE_MIN_WIDTH = 18
COMPACT_TILE_HEIGHT = 8
GUTTER = 1


def tiles_that_fit(size: Size, *, compact: bool = False) -> tuple[int, int]:
    """Columns and rows of tiles that fit in a grid's content area of ``size``."""
    min_width = COMPACT_TILE_MIN_WIDTH if compact else TILE_MIN_WIDTH
    height = COMPACT_TILE_HEIGHT if compact else TILE_HEIGHT
    columns = max(1, (max(1, size.width) + GUTTER) // (min_width + GUTTER))
    return columns, max(1, max(1, size.height) // height)


def stock_label(stock: int) -> str:
    """``sold out``, ``1 left`` or ``12 in stock``."""
    if stock <= 0:
        return "sold out"
    if stock == 1:
        return "1 left"
    return f"{stock:,} in stock"


#: The mark on the frame of a card the person keeps as a favourite.
FAVOURITE_MARK = "♥"


class ItemTile(Vertical):
    """One card: picture, title, price and stock; sold-out and private items and favourites are
    marked, and the similarity of a similar-picture result is written on the bottom of the
    frame."""

    DEFAULT_CSS = """
    ItemTile {
        height: 12;
        width: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-warning;
        border-title-style: italic;
        border-subtitle-color: $text-accent;
        border-subtitle-style: bold;
        padding: 0 1;
        &.-highlight { border: heavy $accent; background: $accent 10%; }
        #title { height: 1; text-style: bold; text-wrap: nowrap; text-overflow: ellipsis; }
        #meta { height: 1; }
        #price { width: 1fr; }
        #stock { width: auto; }
        Picture { height: 1fr; }
    }
    """

    @dataclass
    class Clicked(Message):
        """A tile was clicked (``chain`` 2 for a double click)."""

        tile: ItemTile
        chain: int

    def __init__(self, slot: int) -> None:
        super().__init__(id=f"tile-{slot}")
        self.slot = slot
        self.card: ItemCard | None = None
        #: How many cards were asked for: a deferred one shows only if no later one was.
        self._requests = 0

    def compose(self) -> ComposeResult:
        yield Picture("loading…")
        yield Static("", id="title")
        with Horizontal(id="meta"):
            yield Static("", id="price", classes="price")
            yield Static("", id="stock", classes="muted")

    async def show(
        self,
        card: ItemCard | None,
        *,
        cache: PictureCache,
        currency: str,
        highlighted: bool,
        favourite: bool = False,
    ) -> bool:
        """Show ``card`` (or nothing); returns whether its picture still has to be decoded.

        Args:
            favourite: mark the card as one of the person's favourites.
        """
        self._requests += 1
        return await self._show(self._requests, card, cache, currency, highlighted, favourite)

    async def _show(
        self,
        request: int,
        card: ItemCard | None,
        cache: PictureCache,
        currency: str,
        highlighted: bool,
        favourite: bool,
    ) -> bool:
        if request != self._requests or not self.is_attached:
            return False  # a later card replaced this one, or the tile is being removed
        if not self.query("#stock"):
            # Not composed down to its row of facts yet (a grid filled the moment it grew):
            # try again shortly. A timer, not call_later: re-queuing at once kept this tile's
            # message queue from ever emptying, which starved the very composition it waited
            # for (a test's app spun at 100% CPU for 25 minutes).
            self.set_timer(_COMPOSE_WAIT, functools.partial(
                self._show, request, card, cache, currency, highlighted, favourite))
            return False
        self.set_class(highlighted and card is not None, "-highlight")
        self.visible = card is not None
        if card is None:
            self.card = None
            await self.query_one(Picture).show(None)
            return False
        self.card = card
        self.set_class(card.stock <= 0, "-sold-out")
        stock = self.query_one("#stock", Static)
        stock.set_class(card.stock <= 0, "sold-out")
        stock.set_class(card.stock > 0, "muted")
        marks = [FAVOURITE_MARK] if favourite else []
        if not card.public:
            marks.append("private")
        self.border_title = " ".join(marks)
        self.border_subtitle = card_reason(card)
        self.query_one("#title", Static).update(Content(card.title or "untitled"))
        self.query_one("#price", Static).update(Content(format_price(card.price_cents, currency)))
        self.query_one("#stock", Static).update(Content(stock_label(card.stock)))
        picture = cache.get(card.id)
        if picture is None and not (card.thumbnail or card.thumbnail_sha256):
            # A card with no picture to wait for (a favourite whose item is gone).
            await self.query_one(Picture).show(None, "no picture")
            return False
        await self.query_one(Picture).show(picture, "loading…")
        return picture is None

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked(self, event.chain))


def _never(_item_id: int) -> bool:
    return False


class CardGrid(Widget, can_focus=True):
    """Cards of a list of items in as many columns as fit, moved through with the keyboard.

    The grid does not fetch: it tells its parent when the highlight reaches the last row
    (:class:`EndReached`) and when an item is opened (:class:`Opened`).

    Args:
        compact: small tiles (picture, title, similarity), e.g. for a strip of one row.
    """

    BINDING_GROUP_TITLE = "Cards"

    DEFAULT_CSS = """
    CardGrid {
        layout: grid;
        grid-gutter: 0 1;
        grid-rows: 12;
        height: 1fr;
        padding: 0 1;
        &:focus ItemTile.-highlight { border: heavy $accent; }
        &:blur ItemTile.-highlight { border: heavy $accent 50%; background: transparent; }
        &.-compact { grid-rows: 8; }
        &.-compact ItemTile { height: 8; }
        &.-compact ItemTile #meta { display: none; }
    }
    """

    BINDINGS = [
        Binding("up,k", "move(0, -1)", "Up", show=False, id="cards.up"),
        Binding("down,j", "move(0, 1)", "Down", show=False, id="cards.down"),
        Binding("left,h", "move(-1, 0)", "Left", show=False, id="cards.left"),
        Binding("right,l", "move(1, 0)", "Right", show=False, id="cards.right"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="cards.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="cards.page-down"),
        Binding("home", "jump(0)", "First item", show=False, id="cards.first"),
        Binding("end", "jump(-1)", "Last loaded item", show=False, id="cards.last"),
        Binding("enter", "open", "Open", id="cards.open"),
        Binding(
            "f",
            "favourite",
            "Favourite",
            id="cards.favourite",
            tooltip="Keep the highlighted item as a favourite, or stop keeping it",
        ),
    ]

    columns: reactive[int] = reactive(1, init=False)
    highlight: reactive[int] = reactive(0, init=False)

    @dataclass
    class Opened(Message):
        """The person opened an item."""

        grid: CardGrid
        card: ItemCard

    @dataclass
    class FavouriteToggled(Message):
        """The person asked to keep the item as a favourite, or to stop keeping it."""

        grid: CardGrid
        card: ItemCard

    @dataclass
    class Highlighted(Message):
        """The highlight moved to another item."""

        grid: CardGrid
        index: int
        card: ItemCard | None

    @dataclass
    class EndReached(Message):
        """The highlight is on the last row of the items loaded so far."""

        grid: CardGrid

    def __init__(
        self,
        *,
        cache: PictureCache | None = None,
        currency: str = "EUR",
        compact: bool = False,
        expected_size: Callable[[Size], Size] | None = None,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        #: The grid's content size in a terminal of a given size, as its screen lays it out:
        #: with it the tiles are composed with the grid, so the first frame has its cards.
        self.expected_size = expected_size
        self.set_class(compact, "-compact")
        self.compact = compact
        self.items: list[ItemCard] = []
        #: Whether an item is one of the person's favourites (its card is marked so).
        self.favourite: Callable[[int], bool] = _never
        # Not `cache or ...`: an empty shared cache is falsy, and must still be shared.
        self.cache = cache if cache is not None else PictureCache()
        self.currency = currency
        self.top_row = 0
        self._rows = 1
        self._tiles: list[ItemTile] = []

    # -- geometry ------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Rows of tiles that fit."""
        return self._rows

    @property
    def window(self) -> range:
        """Indexes of the items in view."""
        start = self.top_row * self.columns
        return range(start, min(len(self.items), start + self.columns * self._rows))

    def _fit(self, size: Size) -> tuple[int, int]:
        return tiles_that_fit(size, compact=self.compact)

    def compose(self) -> ComposeResult:
        """The tiles the grid expects to hold, when it was told how to expect (else none yet).

        Tiles composed here are laid out in the screen's first layout, so its first frame has
        the cards (e.g. a saved gallery on a warm reopen); the first resize corrects a wrong
        guess. Without a guess the tiles come with the first resize, one layout later.
        """
        if self.expected_size is None:
            return
        columns, rows = self._fit(self.expected_size(self.app.size))
        self._rows = rows
        self.set_reactive(CardGrid.columns, columns)
        self.styles.grid_size_columns = columns
        self._tiles = [ItemTile(slot) for slot in range(columns * rows)]
        yield from self._tiles

    async def on_resize(self) -> None:
        columns, rows = self._fit(self.content_size)
        if columns != self.columns or rows != self._rows or not self._tiles:
            self._rows = rows
            self.columns = columns
            await self._rebuild()

    async def _rebuild(self) -> None:
        self.styles.grid_size_columns = self.columns
        wanted = self.columns * self._rows
        # Only the difference is mounted or removed: tiles kept are re-filled below.
        if len(self._tiles) > wanted:
            extra, self._tiles = self._tiles[wanted:], self._tiles[:wanted]
            await self.remove_children(extra)
        elif len(self._tiles) < wanted:
            added = [ItemTile(slot) for slot in range(len(self._tiles), wanted)]
            self._tiles.extend(added)
            await self.mount_all(added)
        self._scroll_to_highlight()
        await self.refresh_tiles()

    # -- content -------------------------------------------------------------------------------

    async def set_items(self, items: list[ItemCard], *, reset: bool = False) -> None:
        """Show ``items`` (the list may grow or shrink later; call :meth:`refresh_tiles`)."""
        self.items = items
        if reset:
            self.top_row = 0
            self.set_reactive(CardGrid.highlight, 0)
        await self.refresh_tiles()

    @property
    def current(self) -> ItemCard | None:
        """The highlighted item."""
        if 0 <= self.highlight < len(self.items):
            return self.items[self.highlight]
        return None

    async def refresh_tiles(self) -> None:
        """Re-fill the tiles from the items in view; decode missing pictures in the background."""
        if self.items and self.highlight >= len(self.items):
            self.set_reactive(CardGrid.highlight, len(self.items) - 1)
        self._scroll_to_highlight()
        start = self.top_row * self.columns
        missing = False
        for slot, tile in enumerate(self._tiles):
            index = start + slot
            card = self.items[index] if index < len(self.items) else None
            missing |= await tile.show(
                card,
                cache=self.cache,
                currency=self.currency,
                highlighted=index == self.highlight,
                favourite=card is not None and self.favourite(card.id),
            )
        if missing:
            self._decode_visible()

    @work(exclusive=True, group="thumbnails")
    async def _decode_visible(self) -> None:
        # The screenful in one thread hop (undecodable thumbnails stay placeholders).
        await self.cache.load_many(
            [
                (card.id, card.thumbnail)
                for card in (self.items[index] for index in self.window)
                if card.id not in self.cache and card.thumbnail
            ]
        )
        for tile in self._tiles:
            shown = tile.card
            picture = self.cache.get(shown.id) if shown is not None else None
            if picture is not None and tile.is_attached:
                for slot in tile.query(Picture):
                    await slot.show(picture)

    # -- movement ------------------------------------------------------------------------------

    def _scroll_to_highlight(self) -> None:
        row = self.highlight // self.columns
        if row < self.top_row:
            self.top_row = row
        elif row >= self.top_row + self._rows:
            self.top_row = row - self._rows + 1
        last_row = max(0, math.ceil(len(self.items) / self.columns) - 1)
        self.top_row = max(0, min(self.top_row, max(0, last_row - self._rows + 1)))

    async def watch_highlight(self, old: int, new: int) -> None:
        old_top = self.top_row
        self._scroll_to_highlight()
        if self.top_row != old_top:
            await self.refresh_tiles()
        else:
            for tile in self._tiles:
                index = self.top_row * self.columns + tile.slot
                tile.set_class(index == new and tile.card is not None, "-highlight")
        self.post_message(self.Highlighted(self, new, self.current))
        if self.items and new // self.columns >= (len(self.items) - 1) // self.columns:
            self.post_message(self.EndReached(self))

    def _move_to(self, index: int) -> None:
        if not self.items:
            return
        self.highlight = max(0, min(len(self.items) - 1, index))

    def action_move(self, dx: int, dy: int) -> None:
        """Move the highlight by columns and rows."""
        if not self.items:
            return
        if dx:
            self._move_to(self.highlight + dx)
        elif dy > 0 and self.highlight + self.columns >= len(self.items):
            # On the last row: stay put, but say the end was reached (more may be fetched).
            if self.highlight // self.columns < (len(self.items) - 1) // self.columns:
                self._move_to(len(self.items) - 1)
            else:
                self.post_message(self.EndReached(self))
        else:
            self._move_to(self.highlight + dy * self.columns)

    def action_page(self, pages: int) -> None:
        """Move the highlight by a screenful."""
        self._move_to(self.highlight + pages * self.columns * self._rows)

    def action_jump(self, index: int) -> None:
        """Jump to the first (0) or last (-1) loaded item."""
        self._move_to(len(self.items) - 1 if index < 0 else index)

    def action_open(self) -> None:
        """Open the highlighted item."""
        card = self.current
        if card is not None:
            self.post_message(self.Opened(self, card))

    def action_favourite(self) -> None:
        """Ask for the highlighted item to be kept as a favourite, or no longer (the app
        decides which, knowing the favourites)."""
        card = self.current
        if card is not None:
            self.post_message(self.FavouriteToggled(self, card))

    @on(ItemTile.Clicked)
    def _tile_clicked(self, message: ItemTile.Clicked) -> None:
        message.stop()
        index = self.top_row * self.columns + message.tile.slot
        if index >= len(self.items):
            return
        self.focus()
        if message.chain >= 2 or index == self.highlight:
            self.highlight = index
            self.action_open()
        else:
            self.highlight = index

    async def _scroll_rows(self, rows: int) -> None:
        last_top = max(0, math.ceil(len(self.items) / self.columns) - self._rows)
        top = max(0, min(last_top, self.top_row + rows))
        if top == self.top_row:
            if rows > 0 and self.items:
                self.post_message(self.EndReached(self))
            return
        self.top_row = top
        # Keep the highlight in view, as a list does when scrolled with the wheel.
        row = self.highlight // self.columns
        if row < top:
            self.set_reactive(
                CardGrid.highlight, top * self.columns + self.highlight % self.columns
            )
        elif row >= top + self._rows:
            last = (top + self._rows - 1) * self.columns + self.highlight % self.columns
            self.set_reactive(CardGrid.highlight, min(len(self.items) - 1, last))
        await self.refresh_tiles()
        self.post_message(self.Highlighted(self, self.highlight, self.current))

    async def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        await self._scroll_rows(1)

    async def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        await self._scroll_rows(-1)


__all__ = [
    "COMPACT_TILE_HEIGHT",
    "COMPACT_TILE_MIN_WIDTH",
    "TILE_HEIGHT",
    "TILE_MIN_WIDTH",
    "CardGrid",
    "ItemTile",
    "stock_label",
    "tiles_that_fit",
]
