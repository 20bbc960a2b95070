"""Provides :class:`BatchTable`: a newest-first list (orders, sales) as a table, batch by batch.

The first batch is fetched when the table is given something to list; each next one only when the
cursor comes near the end of what is loaded, or on ``n``, with the cursor of the previous batch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Static

from protocol.paging import BatchedList, FetchAfter
from tui.context import ShopNode
from tui.keys import THIS_SCREEN
from tui.widgets.batch_fetch import fetch_next_batch

T = TypeVar("T")

#: A cell: plain text, themed text (:class:`Content`) or right-aligned numbers (:class:`Text`).
Cell = str | Content | Text


class Column(NamedTuple):
    """A table column: its key, label and width in cells; numbers are right-aligned."""

    key: str
    label: str
    width: int
    right: bool = False


class RowTable(DataTable[Cell]):
    """A row-cursor table whose Enter is described, so the help lists it with the screen's keys.

    A screen's own ``enter`` binding would be shadowed by the table's, which has no description.
    """

    BINDING_GROUP_TITLE = THIS_SCREEN

    BINDINGS = [Binding("enter", "select_cursor", "Open", id="table.open", show=False)]

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)


def add_columns(table: DataTable[Cell], columns: Sequence[Column]) -> None:
    """Give ``table`` these columns, the labels of right-aligned ones right-aligned too."""
    for column in columns:
        label = Text(column.label, justify="right") if column.right else column.label
        table.add_column(label, width=column.width, key=column.key)


#: Rows from the end at which the next batch is fetched.
PREFETCH_ROWS = 3


class BatchTable(ShopNode, Vertical, Generic[T]):
    """Rows of one list, a status line (``12 orders · n or the last row loads more``) and an
    empty state.

    Args:
        columns: key, label and width of each column.
        cells: the cells of an entry, one per column.
        key: what makes two entries the same (a retried batch adds nothing twice).
        count: the number of loaded entries in words, e.g. ``3 orders``.
        empty_text: what to say when the list is empty.
    """

    BINDING_GROUP_TITLE = "List"

    DEFAULT_CSS = """
    BatchTable {
        height: 1fr;
        DataTable { height: 1fr; }
        .batch-empty {
            display: none;
            height: 1fr;
            width: 1fr;
            content-align: center middle;
            text-align: center;
            color: $text-muted;
        }
        &.-empty .batch-empty { display: block; }
        &.-empty DataTable { display: none; }
        .batch-status-line { height: 1; padding: 0 2; background: $boost; }
        .batch-status { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        .batch-hint { width: auto; color: $text-muted; }
    }
    """

    BINDINGS = [
        Binding("n", "more", "More", id="batch.more", tooltip="Fetch the next batch now"),
        Binding("r", "reload", "Refresh", id="batch.reload", tooltip="Load the list afresh"),
    ]

    @dataclass
    class Opened(Message):
        """The person pressed Enter on an entry."""

        table: BatchTable[Any]
        entry: Any

    def __init__(
        self,
        *,
        columns: Sequence[Column],
        cells: Callable[[T], Sequence[Cell]],
        key: Callable[[T], Hashable],
        count: Callable[[int], str],
        empty_text: str,
        id: str | None = None,  # noqa: A002
    ) -> None:
        super().__init__(id=id)
        self.columns = list(columns)
        self.cells = cells
        self.key = key
        self.count = count
        self.empty_text = empty_text
        self.batches: BatchedList[T] | None = None
        self.fetching = False
        self._fetch_batch: FetchAfter[T] | None = None

    @property
    def table(self) -> DataTable[Cell]:
        """The rows."""
        return self.query_one(DataTable)

    def compose(self) -> ComposeResult:
        yield RowTable()
        yield Static(Content(self.empty_text), classes="batch-empty")
        with Horizontal(classes="batch-status-line"):
            yield Static("", classes="batch-status")
            yield Static("", classes="batch-hint")

    def on_mount(self) -> None:
        add_columns(self.table, self.columns)

    # -- loading -------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether a list was asked for (it may still be on its way)."""
        return self.batches is not None

    def load(self, fetch: FetchAfter[T]) -> None:
        """List what ``fetch`` returns, from its first batch."""
        self._fetch_batch = fetch
        self.batches = BatchedList(self.key)
        self.table.clear()
        self.set_class(False, "-empty")
        self._fetch()

    def action_more(self) -> None:
        """Fetch the next batch, unless one is on its way or the list is complete."""
        if self.batches is not None and not self.fetching and not self.batches.exhausted:
            self._fetch()

    def action_reload(self) -> None:
        """Load the list afresh."""
        if self._fetch_batch is not None:
            self.load(self._fetch_batch)

    @work(exclusive=True, group="batch")
    async def _fetch(self) -> None:
        batches, fetch = self.batches, self._fetch_batch
        if batches is None or fetch is None:
            return
        added = await fetch_next_batch(
            self, lambda: batches.load_next(fetch), lambda: batches is self.batches
        )
        if added is None:
            return
        for entry in added:
            self.table.add_row(*self.cells(entry), key=self._row_key(entry))
        self.set_class(batches.exhausted and not batches.items, "-empty")
        self._show_status()

    def prepend(self, entry: T) -> None:
        """Show a new entry first (one made in this app since the list was loaded)."""
        batches = self.batches
        if batches is None or not batches.started or not batches.prepend(entry):
            return
        current = self.current
        self.table.clear()
        for item in batches.items:
            self.table.add_row(*self.cells(item), key=self._row_key(item))
        if current is not None:
            self.table.move_cursor(row=batches.items.index(current), animate=False)
        self.set_class(False, "-empty")
        self._show_status()

    def _row_key(self, entry: T) -> str:
        return repr(self.key(entry))

    # -- the cursor ----------------------------------------------------------------------------

    @property
    def current(self) -> T | None:
        """The entry under the cursor."""
        batches = self.batches
        row = self.table.cursor_row
        if batches is None or self.table.row_count == 0 or not 0 <= row < len(batches.items):
            return None
        return batches.items[row]

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        message.stop()
        batches = self.batches
        rows = self.table.row_count
        # Within a few rows of the end (fewer when only a few rows are loaded, so a short first
        # batch does not pull in the next one before anyone moved).
        near_end = message.cursor_row >= rows - min(PREFETCH_ROWS, max(1, rows // 2))
        if batches is not None and near_end and not self.fetching and not batches.exhausted:
            self._fetch()
        self._show_status()

    @on(DataTable.RowSelected)
    def _row_selected(self, message: DataTable.RowSelected) -> None:
        message.stop()
        entry = self.current
        if entry is not None:
            self.post_message(self.Opened(self, entry))

    # -- status --------------------------------------------------------------------------------

    def _show_status(self) -> None:
        try:
            status = self.query_one(".batch-status", Static)
            hint = self.query_one(".batch-hint", Static)
        except NoMatches:
            return  # being taken down
        batches = self.batches
        if batches is None or not batches.started:
            status.update("loading…" if self.fetching else "")
            hint.update("")
            return
        text = self.count(len(batches))
        if self.fetching:
            text += " · loading more…"
        status.update(Content(text))
        parts: list[str] = []
        if batches.items:
            parts.append(f"row {self.table.cursor_row + 1}")
        if batches.exhausted:
            parts.append("end of the list" if batches.items else "")
        else:
            parts.append("n or the last row loads more")
        hint.update(Content(" · ".join(part for part in parts if part)))


__all__ = ["BatchTable", "Cell", "Column", "RowTable", "add_columns"]
