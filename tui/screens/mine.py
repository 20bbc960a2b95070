"""Provides :class:`MyItemsScreen`: the person's listings in a table, for bulk changes."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowDoesNotExist, RowKey

from protocol.catalogue_client import delete_items, edit_item
from protocol.messages.base import Event
from protocol.messages.catalogue import ItemCard, ListingFilters
from protocol.messages.live import ItemAdded, ItemChanged, ItemRemoved
from protocol.money import format_price
from tui.data.listing import Listing, ListingQuery
from tui.data.numbers import format_count
from tui.dialogs.confirm import ConfirmDialog
from tui.screens.base import PixmartScreen
from tui.widgets.card_grid import stock_label

#: Column labels and widths (cells).
COLUMNS = (("", 1), ("Title", 34), ("Price", 12), ("Stock", 12), ("Visibility", 10), ("Tags", 30))
MARK = "●"
#: Rows from the end at which the next batch is fetched.
PREFETCH_ROWS = 3


class MyItemsScreen(PixmartScreen):
    """Every item the person sells, with stock; select several to delete or hide them."""

    TITLE = "My items"

    DEFAULT_CSS = """
    MyItemsScreen {
        DataTable { height: 1fr; }
        #mine-status { height: 1; padding: 0 2; background: $boost; }
    }
    """

    BINDINGS = [
        Binding("space", "toggle_row", "Select", id="mine.select"),
        Binding("ctrl+a", "select_all", "All/none", id="mine.select-all"),
        Binding("enter", "open", "Open", id="mine.open"),
        Binding("d,delete", "delete", "Delete", id="mine.delete"),
        Binding(
            "v",
            "visibility",
            "Visibility",
            id="mine.visibility",
            tooltip="Make the selected items private (or public, if they all are private)",
        ),
        Binding("r", "reload", "Refresh", id="mine.reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.listing = Listing(ListingQuery(ListingFilters(mine=True)))
        self.selected: set[int] = set()
        self.fetching = False

    def compose_body(self) -> ComposeResult:
        table: DataTable[str | Content] = DataTable(
            id="mine-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("", id="mine-status")

    @property
    def table(self) -> DataTable[str | Content]:
        """The listings table."""
        return self.query_one("#mine-table", DataTable)

    async def on_mount(self) -> None:
        for label, width in COLUMNS:
            self.table.add_column(label, width=width)
        self.table.focus()
        self.pixmart.server_events.subscribe(self, self._server_event)
        await self.action_reload()

    # -- loading -------------------------------------------------------------------------------

    async def action_reload(self) -> None:
        """Load the listings afresh."""
        self.listing = Listing(ListingQuery(ListingFilters(mine=True)), self.pixmart.listing_batch)
        self.selected.clear()
        self.table.clear()
        self._fetch()

    @work(exclusive=True, group="mine")
    async def _fetch(self) -> None:
        listing = self.listing
        self.fetching = True
        self._show_status()
        try:
            added = await listing.fetch_next(self.pixmart.require_session())
        except Exception as exc:
            self.pixmart.report_failure(exc)
            return
        finally:
            self.fetching = False
        if listing is not self.listing:
            return
        for card in added:
            self.table.add_row(*self._cells(card), key=str(card.id))
        self._show_status()

    def _cells(self, card: ItemCard) -> tuple[str | Content, ...]:
        currency = self.pixmart.currency
        return (
            MARK if card.id in self.selected else "",
            Content(card.title or "untitled"),
            format_price(card.price_cents, currency),
            Content.styled(stock_label(card.stock), "$text-error bold" if card.stock <= 0 else ""),
            "public" if card.public else Content.styled("private", "$text-warning italic"),
            Content(", ".join(card.tags)),
        )

    def _update_row(self, card: ItemCard) -> None:
        key = str(card.id)
        for column, value in enumerate(self._cells(card)):
            try:
                self.table.update_cell_at(Coordinate(self.table.get_row_index(key), column), value)
            except RowDoesNotExist:
                return

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        near_end = message.cursor_row >= self.table.row_count - PREFETCH_ROWS
        if near_end and not self.fetching and not self.listing.exhausted:
            self._fetch()
        self._show_status()

    def _show_status(self) -> None:
        listing = self.listing
        if listing.total is None:
            text = "loading…"
        else:
            text = f"{format_count(len(listing))} of {format_count(listing.total)} items"
            if self.selected:
                text += f" · {len(self.selected)} selected"
            if self.fetching:
                text += " · loading more…"
            if not listing.items and listing.exhausted:
                text = "You sell nothing yet: press u to upload pictures."
        self.query_one("#mine-status", Static).update(Content(text))

    # -- selection -----------------------------------------------------------------------------

    def _current(self) -> ItemCard | None:
        if self.table.row_count == 0:
            return None
        row_key, _ = self.table.coordinate_to_cell_key(self.table.cursor_coordinate)
        return self.listing.get(int(str(row_key.value)))

    def _targets(self) -> list[ItemCard]:
        """The selected items, or the highlighted one when none is selected."""
        if self.selected:
            return [card for card in self.listing.items if card.id in self.selected]
        current = self._current()
        return [current] if current is not None else []

    def action_toggle_row(self) -> None:
        """Select or unselect the highlighted item."""
        card = self._current()
        if card is None:
            return
        self.selected.symmetric_difference_update({card.id})
        self._update_row(card)
        if self.table.cursor_row < self.table.row_count - 1:
            self.table.move_cursor(row=self.table.cursor_row + 1)
        self._show_status()

    def action_select_all(self) -> None:
        """Select every loaded item, or none if all are selected."""
        everything = {card.id for card in self.listing.items}
        self.selected = set() if self.selected >= everything else everything
        for card in self.listing.items:
            self._update_row(card)
        self._show_status()

    def action_open(self) -> None:
        """Open the highlighted item."""
        card = self._current()
        if card is not None:
            self.pixmart.open_item(card)

    @on(DataTable.RowSelected)
    def _row_selected(self, message: DataTable.RowSelected) -> None:
        message.stop()
        self.action_open()

    # -- bulk changes --------------------------------------------------------------------------

    @work(exclusive=True, group="mine-change")
    async def action_delete(self) -> None:
        """Delete the selected items (or the highlighted one), after a confirmation."""
        targets = self._targets()
        if not targets:
            return
        what = f"“{targets[0].title}”" if len(targets) == 1 else f"{len(targets)} items"
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                f"Delete {what}?",
                "They disappear from the catalogue for everyone. This cannot be undone.",
                confirm_label="Delete",
                dangerous=True,
            )
        )
        if not confirmed:
            return
        try:
            results = await delete_items(
                self.pixmart.require_session(), [card.id for card in targets]
            )
        except Exception as exc:
            self.pixmart.report_failure(exc)
            return
        failures = [result for result in results if result.error is not None]
        for result in results:
            if result.error is None:
                self._drop(result.item_id)
        gone = len(results) - len(failures)
        if failures:
            self.notify(
                f"Deleted {gone}; {len(failures)} could not be: {failures[0].message}",
                severity="warning",
            )
        else:
            self.notify(f"Deleted {gone} item{'s' if gone != 1 else ''}.", timeout=3)
        self._show_status()

    @work(exclusive=True, group="mine-change")
    async def action_visibility(self) -> None:
        """Make the selected items private, or public when all of them are private."""
        targets = self._targets()
        if not targets:
            return
        public = all(not card.public for card in targets)
        session = self.pixmart.require_session()
        changed = 0
        for card in targets:
            try:
                updated = await edit_item(session, card.id, public=public)
            except Exception as exc:
                self.pixmart.report_failure(exc)
                break
            self.listing.replace(updated)
            self._update_row(updated)
            changed += 1
        word = "public" if public else "private"
        self.notify(f"{changed} item{'s are' if changed != 1 else ' is'} now {word}.", timeout=3)
        self._show_status()

    def _drop(self, item_id: int) -> None:
        self.selected.discard(item_id)
        if self.listing.remove(item_id) is not None:
            try:
                self.table.remove_row(RowKey(str(item_id)))
            except RowDoesNotExist:
                pass

    # -- live updates --------------------------------------------------------------------------

    async def _server_event(self, event: Event) -> None:
        if isinstance(event, ItemChanged):
            if self.listing.apply_change(event) is not None:
                card = self.listing.get(event.item_id)
                if card is not None:
                    self._update_row(card)
                self._show_status()
        elif isinstance(event, ItemRemoved):
            self._drop(event.item_id)
            self._show_status()
        elif isinstance(event, ItemAdded):
            user = self.pixmart.user
            if user is not None and event.owner_id == user.id:
                await self.action_reload()  # a new listing of mine (e.g. from the upload screen)


__all__ = ["MyItemsScreen"]
