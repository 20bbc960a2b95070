"""Provides :class:`SearchScreen`: words, tags, a price range and stock, with results as cards.

With the server's image model, ``By picture…`` (ctrl+b) picks a picture file and shows the items
that look like it, the form's tags, prices and stock applying too. ``Save search`` (ctrl+s) keeps
the form's search on the server, which tells the person of new matches in their inbox.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Button, Checkbox, Input, Select

from protocol.catalogue_client import list_tags
from protocol.listing_fields import parse_tags
from protocol.messages.catalogue import ListingFilters, SortOrder
from protocol.money import parse_price
from tui.data.alerts import save_listing, saved_message
from tui.data.listing import ListingQuery
from tui.data.similar import search_filters
from tui.dialogs.pick_picture import PickPictureDialog
from tui.screens.base import PixmartScreen
from tui.widgets.catalogue_view import CatalogueView

SORTS: list[tuple[str, SortOrder]] = [
    ("Newest first", SortOrder.NEWEST),
    ("Cheapest first", SortOrder.PRICE_UP),
    ("Dearest first", SortOrder.PRICE_DOWN),
]


class TagSuggester(Suggester):
    """Completes the tag being typed (after the last comma) from the server's tags."""

    def __init__(self, screen: PixmartScreen) -> None:
        super().__init__(use_cache=True, case_sensitive=False)
        self._screen = screen

    async def get_suggestion(self, value: str) -> str | None:
        head, _, last = value.rpartition(",")
        prefix = last.strip()
        if not prefix:
            return None
        try:
            tags = await list_tags(self._screen.pixmart.require_session(), prefix, limit=1)
        except Exception:
            return None  # no suggestion is better than an error while typing
        if not tags or not tags[0].name.casefold().startswith(prefix.casefold()):
            return None
        typed = value[: len(value) - len(last)]
        return f"{typed}{' ' if head else ''}{tags[0].name}"


class SearchScreen(PixmartScreen):
    """A search form over the catalogue, results below; Enter in any field searches."""

    TITLE = "Search"

    DEFAULT_CSS = """
    SearchScreen {
        #search-form { height: auto; padding: 0 1; background: $boost; }
        #search-form Horizontal { height: auto; }
        #search-text { width: 1fr; }
        #search-tags { width: 1fr; }
        #search-min, #search-max { width: 16; }
        #search-sort { width: 24; }
        #search-in-stock { width: auto; }
        Button { margin-left: 1; }
    }
    """

    BINDINGS = [
        Binding("ctrl+f", "focus_query", "Edit search", id="search.focus"),
        Binding("escape", "focus_results", "Results", show=False, id="search.results"),
        Binding(
            "ctrl+s",
            "save_search",
            "Save search",
            id="search.save",
            tooltip="Be told (in your inbox) of new items that match this search",
        ),
        Binding(
            "ctrl+b",
            "by_picture",
            "By picture",
            id="search.by-picture",
            tooltip="Find items that look like a picture of yours (needs the image model)",
        ),
    ]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="search-form"):
            with Horizontal():
                yield Input(
                    placeholder="Words in the title, description or tags",
                    id="search-text",
                    max_length=256,
                )
                yield Button("Search", id="search-go", variant="primary")
                yield Button("By picture…", id="search-by-picture", disabled=True)
            with Horizontal():
                yield Input(placeholder="Tags, comma separated", id="search-tags", suggester=None)
                yield Input(placeholder="Min price", id="search-min")
                yield Input(placeholder="Max price", id="search-max")
                yield Checkbox("In stock", id="search-in-stock")
                yield Select(SORTS, value=SortOrder.NEWEST, allow_blank=False, id="search-sort")
        yield CatalogueView(
            id="search-results", empty_text="No items match.\n\nTry fewer words or tags."
        )

    @property
    def view(self) -> CatalogueView:
        """The results."""
        return self.query_one(CatalogueView)

    def on_mount(self) -> None:
        self.query_one("#search-tags", Input).suggester = TagSuggester(self)
        self.query_one("#search-by-picture", Button).disabled = not self.pixmart.has_vision
        self.query_one("#search-text", Input).focus()
        self.view.show_message(
            "Type words, tags or a price range and press Enter.\n\n"
            "Leave everything blank to see the whole catalogue."
        )

    def query_from_form(self) -> ListingQuery:
        """The search the form describes.

        Raises:
            ValueError: a price or the tags are not valid; the message says which.
        """
        currency = self.pixmart.currency
        low_text = self.query_one("#search-min", Input).value.strip()
        high_text = self.query_one("#search-max", Input).value.strip()
        low = parse_price(low_text, currency) if low_text else None
        high = parse_price(high_text, currency) if high_text else None
        if low is not None and high is not None and low > high:
            raise ValueError("The lowest price is above the highest")
        sort = self.query_one("#search-sort", Select).value
        return ListingQuery(
            ListingFilters(
                text=self.query_one("#search-text", Input).value.strip(),
                tags=parse_tags(self.query_one("#search-tags", Input).value),
                min_price_cents=low,
                max_price_cents=high,
                in_stock=self.query_one("#search-in-stock", Checkbox).value,
            ),
            sort if isinstance(sort, SortOrder) else SortOrder.NEWEST,
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#search-go")
    async def run_search(self) -> None:
        """Search with what the form says."""
        try:
            query = self.query_from_form()
        except ValueError as exc:
            self.notify(str(exc), title="Search", severity="warning")
            return
        await self.view.load(query)
        self.view.grid.focus()

    @on(Select.Changed, "#search-sort")
    @on(Checkbox.Changed, "#search-in-stock")
    async def _refine(self) -> None:
        if self.view.listing is not None:
            await self.run_search()

    @on(CatalogueView.Opened)
    def _open_item(self, message: CatalogueView.Opened) -> None:
        self.pixmart.open_item(message.card)

    def action_focus_query(self) -> None:
        """Back to the search words."""
        self.query_one("#search-text", Input).focus()
        self.view.show_message(
            "Type words, tags or a price range and press Enter.\n\n"
            "Leave everything blank to see the whole catalogue."
        )

    def action_focus_results(self) -> None:
        """To the results."""
        self.view.grid.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "by_picture":
            return True if self.pixmart.has_vision else None
        return True

    @work(exclusive=True, group="search-save")
    async def action_save_search(self) -> None:
        """Save the form's search: new items that match it reach the person's inbox."""
        try:
            query = self.query_from_form()
        except ValueError as exc:
            self.notify(str(exc), title="Save search", severity="warning")
            return
        if query.filters == ListingFilters():
            self.notify(
                "Type words, tags, a price range or tick in stock first: "
                "a saved search tells you of new items that match it.",
                title="Save search",
                severity="warning",
            )
            return
        app = self.pixmart
        try:
            saved = await save_listing(app.require_session(), query)
        except Exception as exc:
            app.report_failure(exc)
            return
        self.notify(saved_message(saved, app.currency), title="Search saved")

    @on(Button.Pressed, "#search-by-picture")
    def action_by_picture(self) -> None:
        """Pick a picture file and show the items that look like it (the filters apply)."""
        app = self.pixmart
        if not app.has_vision:
            self.notify("This server has no image model, so it cannot search by picture.")
            return
        try:
            filters = search_filters(self.query_from_form().filters)  # words do not apply
        except ValueError as exc:
            self.notify(str(exc), title="Search", severity="warning")
            return
        described = ListingQuery(filters).describe()

        def search(path: Path | None) -> None:
            if path is not None:
                app.search_by_picture(path, filters)

        self.app.push_screen(PickPictureDialog(app.upload_root, filters=described), search)


__all__ = ["SORTS", "SearchScreen", "TagSuggester"]
