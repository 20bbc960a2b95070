"""Provides :class:`InboxScreen`: the notices the shop kept for the person, newest first.

Notices come in batches like every list (the next one when the cursor nears the end, or on
``n``); a new one appears at the top as it arrives. Enter opens the notice's item (and marks the
notice read); a notice about an item that was deleted or turned private says so and opens
nothing. Space marks the highlighted notice read, ``A`` every notice, ``C`` clears the inbox.
"""

from __future__ import annotations

import msgspec
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding

from protocol import inbox_client
from protocol.messages.inbox import InboxChanged, Notice, NoticeItemStatus, NoticeKind
from tui.data.commerce import format_when
from tui.dialogs.confirm import ConfirmDialog
from tui.screens.base import PixmartScreen
from tui.screens.item import ItemScreen
from tui.widgets.batch_table import BatchTable, Cell, Column

NOTICE_COLUMNS: tuple[Column, ...] = (
    Column("new", "", 1),
    Column("when", "Date", 16),
    Column("kind", "About", 14),
    Column("item", "Item", 8, right=True),
    Column("text", "Notice", 72),
)

#: What each kind of notice is about, in a word or two.
KIND_WORDS: dict[NoticeKind, str] = {
    NoticeKind.PRICE_DROP: "price drop",
    NoticeKind.BACK_IN_STOCK: "back in stock",
    NoticeKind.FAVOURITE_GONE: "favourite gone",
    NoticeKind.ALERT_MATCH: "saved search",
}

EMPTY_TEXT = (
    "Your inbox is empty.\n\n"
    "Keep items as favourites (f on a card) to hear when they get cheaper or come back."
)


def notice_cells(notice: Notice) -> tuple[Cell, ...]:
    """Unread mark, date, kind, item and text of a notice (unread ones in bold)."""
    style = "" if notice.read else "bold"
    gone = notice.item_status in (NoticeItemStatus.DELETED, NoticeItemStatus.PRIVATE)
    return (
        Text("" if notice.read else "●", style="bold"),
        format_when(notice.created_at),
        KIND_WORDS.get(notice.kind, notice.kind.value),
        Text(f"#{notice.item_id}" if notice.item_id is not None else "", justify="right"),
        Text(notice.text, style="dim italic" if gone else style),
    )


def _count(unread: int) -> str:
    return f"{unread:,} unread"


class InboxScreen(PixmartScreen):
    """The inbox: price drops and restocks of favourites, saved searches' matches."""

    TITLE = "Inbox"
    AUTO_FOCUS = "#inbox-list RowTable"

    BINDINGS = [
        # Short labels, so the keys and the app's fit two footer rows at 80 columns.
        Binding("space", "mark_read", "Read", id="inbox.read", tooltip="Mark the notice read"),
        Binding("A", "mark_all_read", "All read", id="inbox.read-all"),
        Binding(
            "C", "clear", "Clear", id="inbox.clear", tooltip="Empty the inbox, after a confirmation"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: The unread count this screen's own changes led to (another device's differ).
        self._expected_unread: int | None = None
        self._left = False

    def compose_body(self) -> ComposeResult:
        yield BatchTable[Notice](
            columns=NOTICE_COLUMNS,
            cells=notice_cells,
            key=lambda notice: notice.id,
            count=lambda loaded: (
                f"{loaded:,} notice{'' if loaded == 1 else 's'}"
                f" · {_count(self.pixmart.inbox.unread)}"
            ),
            empty_text=EMPTY_TEXT,
            id="inbox-list",
        )

    @property
    def notices(self) -> BatchTable[Notice]:
        """The list of notices."""
        return self.query_one("#inbox-list", BatchTable)

    def on_mount(self) -> None:
        self.pixmart.inbox.changes.subscribe(self, self._inbox_changed)
        self.notices.load(self._fetch)

    def on_screen_resume(self) -> None:
        if self._left:
            self.notices.action_reload()  # notices read or opened while away
        self.notices.table.focus()

    def on_screen_suspend(self) -> None:
        self._left = True

    async def _fetch(self, cursor: str | None) -> tuple[list[Notice], str | None]:
        app = self.pixmart
        batch = await inbox_client.inbox_batch(
            app.require_session(), limit=app.listing_batch, cursor=cursor
        )
        return batch.notices, batch.cursor

    # -- live ----------------------------------------------------------------------------------

    def _inbox_changed(self, event: InboxChanged) -> None:
        if event.notice is not None:
            self.notices.prepend(event.notice)
        elif event.unread != self._expected_unread:
            self.notices.action_reload()  # read or cleared on another device
        self._expected_unread = None

    # -- actions -------------------------------------------------------------------------------

    def _show_read(self, notices: list[Notice]) -> None:
        """Show these notices as read where they stand."""
        batches = self.notices.batches
        table = self.notices.table
        if batches is None:
            return
        for notice in notices:
            read = msgspec.structs.replace(notice, read=True)
            if batches.replace(read) is None:
                continue
            cells = notice_cells(read)
            for column, cell in zip(NOTICE_COLUMNS, cells, strict=True):
                table.update_cell(repr(read.id), column.key, cell)

    @work(exclusive=True, group="inbox-read")
    async def action_mark_read(self) -> None:
        """Mark the highlighted notice read."""
        notice = self.notices.current
        if notice is None or notice.read:
            return
        if await self.pixmart.inbox.mark_read([notice.id]):
            self._expected_unread = self.pixmart.inbox.unread
            self._show_read([notice])

    @work(exclusive=True, group="inbox-read")
    async def action_mark_all_read(self) -> None:
        """Mark every notice read."""
        if await self.pixmart.inbox.mark_all_read():
            self._expected_unread = 0
            batches = self.notices.batches
            self._show_read([n for n in batches.items if not n.read] if batches else [])
            self.notify("Every notice is read.", timeout=3)

    @work(exclusive=True, group="inbox-clear")
    async def action_clear(self) -> None:
        """Delete every notice, after a confirmation."""
        batches = self.notices.batches
        if batches is None or not batches.items:
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                "Clear the inbox?",
                "Every notice is deleted, read or not.",
                confirm_label="Clear",
                dangerous=True,
            )
        )
        if confirmed and await self.pixmart.inbox.clear():
            self._expected_unread = 0
            self.notices.action_reload()
            self.notify("The inbox is empty.", timeout=3)

    @on(BatchTable.Opened)
    def _opened(self, message: BatchTable.Opened) -> None:
        message.stop()
        notice = message.entry
        if not isinstance(notice, Notice) or notice.item_id is None:
            return
        if notice.item_status is NoticeItemStatus.DELETED:
            self.notify("That item was deleted by its seller.", timeout=4)
        elif notice.item_status is NoticeItemStatus.PRIVATE:
            self.notify("That item is no longer available.", timeout=4)
        else:
            self.app.push_screen(ItemScreen(notice.item_id))
        if not notice.read:
            self._read_opened(notice)

    @work(group="inbox-read")
    async def _read_opened(self, notice: Notice) -> None:
        if await self.pixmart.inbox.mark_read([notice.id]):
            self._expected_unread = self.pixmart.inbox.unread
            self._show_read([notice])


__all__ = ["NOTICE_COLUMNS", "InboxScreen", "notice_cells"]
