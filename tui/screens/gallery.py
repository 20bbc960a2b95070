"""Provides :class:`GalleryScreen`: the catalogue as a grid of cards, filtered by tags.

On a reopen it shows the gallery of the last visit at once (saved by the app's
:class:`~tui.data.gallery_cache.GalleryCache`, pictures from the disk cache), marked in the
header as refreshing, and updates those cards in place once the server has resumed the session.
While the server cannot be reached the header says so and the cards stay browsable.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.widgets import Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from protocol.catalogue_client import list_tags
from protocol.messages.accounts import UserInfo
from protocol.messages.catalogue import ListingFilters, PictureMode, TagCount
from tui.data.gallery_cache import Freshness
from tui.data.gallery_snapshot import MAX_CARDS
from tui.data.listing import Listing, ListingQuery
from tui.screens.base import PixmartScreen
from tui.widgets.card_grid import GUTTER, TILE_MIN_WIDTH, tiles_that_fit
from tui.widgets.catalogue_view import CatalogueView
from tui.widgets.status_header import StatusHeader

SIDEBAR_WIDTH = 30
#: The tag sidebar sits beside the cards only where two cards still fit next to it (the 2 is the
#: grid's padding); in a narrower terminal (80 columns, say) the pictures come first: the sidebar
#: is folded away and ``t`` unfolds it over the cards.
SIDE_BY_SIDE_WIDTH = SIDEBAR_WIDTH + 2 * TILE_MIN_WIDTH + GUTTER + 2


#: Rows around the cards at the top and bottom of the gallery: the header, the listing's status
#: line and the key footer, whose keys flow onto a second row.
CHROME_ROWS = 4


def expected_grid_size(terminal: Size) -> Size:
    """The gallery's card grid content size in a ``terminal`` of this size, as laid out.

    A guess made before the first layout so the grid's tiles exist in the first frame; a wrong
    one costs only a correction when the grid learns its size.
    """
    sidebar = SIDEBAR_WIDTH if terminal.width >= SIDE_BY_SIDE_WIDTH else 0
    grid_padding = 2
    return Size(
        max(1, terminal.width - sidebar - grid_padding), max(1, terminal.height - CHROME_ROWS)
    )


def screenful(terminal: Size) -> int:
    """How many cards the gallery shows at once in a ``terminal`` of this size."""
    columns, rows = tiles_that_fit(expected_grid_size(terminal))
    return columns * rows


def tag_prompt(tag: TagCount, width: int = 20) -> Text:
    """``cat ········ 12``: the tag and its count, the count right-aligned."""
    count = f"{tag.count:,}"
    name = tag.name if len(tag.name) <= width - len(count) - 1 else tag.name[: width - 2] + "…"
    gap = max(1, width - len(name) - len(count))
    return Text.assemble(name, " " * gap, (count, "dim"))


class TagSidebar(Vertical):
    """Tags with their counts; the selected ones filter the gallery (all must hold).

    Beside the cards in a wide gallery; in a narrow one it is folded away and shows (class
    ``-open``) over the cards only while the tag list has the focus.
    """

    BINDING_GROUP_TITLE = "Tags"

    DEFAULT_CSS = """
    TagSidebar {
        width: 30;  /* SIDEBAR_WIDTH */
        height: 1fr;
        border-right: vkey $panel-lighten-1;
        padding: 0 1;
        #tags-title { padding: 0 1; width: 1fr; }
        SelectionList { height: 1fr; border: none; padding: 0; background: transparent; }
        #tags-hint { color: $text-muted; height: auto; padding: 0 1; }
    }
    """

    BINDINGS = [Binding("x", "clear", "Clear tags", id="tags.clear")]

    def compose(self) -> ComposeResult:
        yield Label("Tags", id="tags-title", classes="section")
        yield SelectionList[str](id="tag-list")
        yield Static("space pick · x clear · esc cards", id="tags-hint")

    @property
    def selection(self) -> SelectionList[str]:
        """The tag list."""
        return self.query_one("#tag-list", SelectionList)

    def show_tags(self, tags: list[TagCount], selected: list[str]) -> None:
        """Offer ``tags`` (most used first), keeping ``selected`` picked."""
        chosen = set(selected)
        with self.selection.prevent(SelectionList.SelectedChanged):
            self.selection.clear_options()
            # Tags no visible item carries filter nothing, unless picked (so they can be unpicked).
            used = [tag for tag in tags if tag.count > 0 or tag.name in chosen]
            known = {tag.name for tag in used}
            extra = [TagCount(name=name, count=0) for name in selected if name not in known]
            self.selection.add_options(
                Selection(tag_prompt(tag), tag.name, tag.name in chosen) for tag in [*used, *extra]
            )
        count = len(used)
        self.query_one("#tags-title", Label).update(f"Tags ({count:,})" if count else "Tags")

    def action_clear(self) -> None:
        """Unpick every tag."""
        self.selection.deselect_all()

    def unfold(self) -> None:
        """Show the sidebar (over the cards when folded away) with the focus in the tag list."""
        self.add_class("-open")
        self.selection.focus()

    @on(events.DescendantBlur)
    def _fold(self) -> None:
        self.remove_class("-open")


class GalleryScreen(PixmartScreen):
    """Everything for sale, newest first, in a responsive grid of cards."""

    TITLE = "Gallery"

    DEFAULT_CSS = """
    GalleryScreen {
        #gallery-body { height: 1fr; layers: cards tags; }
        &.-narrow TagSidebar {
            display: none;
            dock: left;
            layer: tags;
            background: $surface;
        }
        &.-narrow TagSidebar.-open { display: block; }
    }
    """

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (SIDE_BY_SIDE_WIDTH, "-wide")]

    BINDINGS = [
        Binding("t", "focus_tags", "Tags", id="gallery.tags", tooltip="Filter by tags"),
        Binding("escape", "focus_cards", "Cards", show=False, id="gallery.cards"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="gallery-body"):
            yield TagSidebar(id="tags")
            yield CatalogueView(
                id="gallery-view",
                live_additions=True,
                expected_grid_size=expected_grid_size,
                empty_text="Nothing matches.\n\nPress u to sell your own pictures.",
            )

    @property
    def view(self) -> CatalogueView:
        """The listing."""
        return self.query_one(CatalogueView)

    @property
    def selected_tags(self) -> list[str]:
        """The tags picked in the sidebar."""
        return list(self.query_one(TagSidebar).selection.selected)

    async def on_mount(self) -> None:
        try:
            await self._show_first_cards()
        except NoMatches:
            # The app closed (or a revoked session took the screen down) while the first
            # cards were on their way: nothing is left to show them in.
            return

    async def _show_first_cards(self) -> None:
        """Show the saved gallery at once if there is one, else load the first batch."""
        self.view.grid.focus()
        cache = self.pixmart.gallery_cache
        cache.changes.subscribe(self, self._show_freshness)
        cache.confirmed.subscribe(self, self._session_confirmed)
        warm = cache.take()
        if warm is None:
            await self.view.load(ListingQuery())  # the tags follow with the first batch
        else:
            await self.view.show_saved(ListingQuery(), warm.cards, warm.saved.total)
            if cache.provisional is None:
                self._session_confirmed(warm.saved.user)  # confirmed while this screen mounted
        self._show_freshness(cache.freshness)

    # -- a warm reopen -------------------------------------------------------------------------

    def _session_confirmed(self, user: UserInfo) -> None:
        """The server resumed the session the saved gallery is shown for: bring it up to date."""
        del user  # the app started the shop afresh had it been someone else
        # The saved cards' pictures are on disk: the batch needs to name them only.
        self.view.refresh_in_place(PictureMode.HASHES)

    def _show_freshness(self, freshness: Freshness) -> None:
        """Mark the header: a saved gallery being refreshed, or what is shown while offline."""
        saved_at = self.pixmart.gallery_cache.saved_at
        saved = saved_at is not None
        when = f" from {time.strftime('%H:%M', time.localtime(saved_at))}" if saved_at else ""
        try:
            listing = self.view.listing
            header = self.query_one(StatusHeader)
        except NoMatches:
            return  # the screen is being taken down
        if freshness is Freshness.OFFLINE:
            if saved:
                shown = f"saved gallery{when}"
            elif listing is not None and listing.items:
                shown = "cards as last loaded"
            else:  # a cold start that has not reached the server yet
                shown = "no cards loaded yet"
            text, kind = f"✕ offline · {shown}", "offline"
        elif freshness is Freshness.REFRESHING and saved:
            text, kind = f"⟳ saved gallery{when} · refreshing…", "refreshing"
        else:
            text, kind = "", ""
        header.mark(text, kind)

    @work(exclusive=True, group="remember")
    async def _remember(self, listing: Listing) -> None:
        """Save the unfiltered gallery's first cards for the next start (best effort)."""
        session = self.pixmart.link.session
        if session is None:
            return
        try:
            await self.pixmart.gallery_cache.remember(
                session, listing.items[:MAX_CARDS], listing.total
            )
        except OSError:
            pass  # a read-only or full disk costs the next start its head start, nothing else

    @work(exclusive=True, group="tags")
    async def _load_tags(self) -> None:
        try:
            tags = await list_tags(self.pixmart.require_session(), limit=200)
        except Exception as exc:
            self.pixmart.report_failure(exc)
            return
        try:
            sidebar = self.query_one(TagSidebar)
            selected = list(sidebar.selection.selected)
        except NoMatches:
            # The screen closed while the tags were on their way (its sidebar may be there
            # still, its list already gone, when the app is closing).
            return
        sidebar.show_tags(tags, selected)

    @on(SelectionList.SelectedChanged, "#tag-list")
    async def _tags_changed(self) -> None:
        tags = self.selected_tags
        listing = self.view.listing
        if listing is not None and listing.query.filters.tags == tags:
            return
        await self.view.load(ListingQuery(ListingFilters(tags=tags)))

    @on(CatalogueView.Loaded)
    def _listing_loaded(self, message: CatalogueView.Loaded) -> None:
        listing = message.listing
        if listing.batches == 1:
            self._load_tags()  # a fresh listing: the counts may have moved too
            self.pixmart.gallery_cache.refreshed()
            self._show_freshness(self.pixmart.gallery_cache.freshness)
        if (
            listing.query == ListingQuery()
            and listing.batches * (listing.batch_size or 24) <= 2 * MAX_CARDS
        ):
            self._remember(listing)

    @on(CatalogueView.Opened)
    def _open_item(self, message: CatalogueView.Opened) -> None:
        self.pixmart.open_item(message.card)

    def action_focus_tags(self) -> None:
        """Move to the tag list, unfolding it in a narrow gallery."""
        self.query_one(TagSidebar).unfold()

    def action_focus_cards(self) -> None:
        """Move back to the cards."""
        self.view.grid.focus()


__all__ = ["GalleryScreen", "TagSidebar", "tag_prompt"]
