"""Provides :class:`SimilarScreen`: the items that look like an example picture or item.

The results are the gallery's: the same card grid and status line (:class:`CatalogueView`), fed
by a :class:`~tui.data.similar.SimilarQuery`, so batches come on demand (at the end, or with
``n``) and each card says how alike it looks (``93% similar``). A side bar shows the example.
``Save search`` (ctrl+s) keeps the example on the server, which tells the person of new items
that look like it in their inbox.
"""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Label, Static

from tui.data.alerts import save_listing, saved_message
from tui.data.listing import ListingQuery
from tui.data.similar import SimilarQuery
from tui.data.thumbnails import decode_picture
from tui.screens.base import PixmartScreen
from tui.widgets.catalogue_view import CatalogueView
from tui.widgets.picture import Picture

#: The example in the side bar is shrunk to this on decode.
EXAMPLE_MAX_SIDE = 256


class SimilarScreen(PixmartScreen):
    """Cards of the items most like an example, best first, beside the example itself.

    Args:
        query: what to look for (a picture's bytes, or an item) and the filters.
        example: a picture of the example for the side bar (the query picture, or the item's
            thumbnail); none shows a placeholder.
    """

    TITLE = "Similar items"

    DEFAULT_CSS = """
    SimilarScreen {
        #similar-body { height: 1fr; }
        #similar-side {
            width: 30;
            height: 1fr;
            border-right: vkey $panel-lighten-1;
            padding: 0 1;
        }
        #similar-side .section { padding: 0 1; }
        #similar-example { height: 12; margin-top: 1; }
        #similar-label { margin-top: 1; padding: 0 1; text-style: bold; }
        #similar-filters { padding: 0 1; }
        #similar-hint { padding: 0 1; margin-top: 1; }
    }
    """

    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="similar.back"),
        Binding(
            "ctrl+s",
            "save_search",
            "Save search",
            id="similar.save",
            tooltip="Be told (in your inbox) of new items that look like this example",
        ),
    ]

    def __init__(self, query: SimilarQuery, example: bytes | None = None) -> None:
        super().__init__()
        #: What the screen looks for.
        self.similar = query
        self.example = example

    def compose_body(self) -> ComposeResult:
        query = self.similar
        filters = ListingQuery(query.filters).describe()
        with Horizontal(id="similar-body"):
            with Vertical(id="similar-side"):
                yield Label("Looks like", classes="section")
                yield Picture("…", id="similar-example")
                yield Static(Content(query.label), id="similar-label")
                yield Static(
                    Content(f"Only {filters}" if filters else "Everything you may see"),
                    id="similar-filters",
                    classes="muted",
                )
                yield Static(
                    "Best match first. The percentage says how alike the pictures look.",
                    id="similar-hint",
                    classes="muted",
                )
            yield CatalogueView(
                id="similar-view",
                empty_text="Nothing looks like it.\n\nTry fewer filters, or another picture.",
            )

    @property
    def view(self) -> CatalogueView:
        """The results."""
        return self.query_one(CatalogueView)

    async def on_mount(self) -> None:
        self.view.grid.focus()
        self._show_example()
        await self.view.load(self.similar)

    @work(exclusive=True, group="example")
    async def _show_example(self) -> None:
        slot = self.query_one("#similar-example", Picture)
        if not self.example:
            await slot.show(None, "no picture")
            return
        try:
            picture = await asyncio.to_thread(decode_picture, self.example, EXAMPLE_MAX_SIDE)
        except Exception:
            await slot.show(None, "no picture")
            return
        await slot.show(picture)

    @on(CatalogueView.Opened)
    def _open_item(self, message: CatalogueView.Opened) -> None:
        self.pixmart.open_item(message.card)

    @work(exclusive=True, group="similar-save")
    async def action_save_search(self) -> None:
        """Save this search by picture: new items that look like the example reach the inbox."""
        app = self.pixmart
        try:
            saved = await save_listing(app.require_session(), self.similar)
        except Exception as exc:
            app.report_failure(exc)
            return
        self.notify(saved_message(saved, app.currency), title="Search saved")

    def action_back(self) -> None:
        """Back to where the search started."""
        self.dismiss(None)


__all__ = ["SimilarScreen"]
