"""Provides :class:`UploadQueue`: the files chosen for upload, one :class:`UploadRow` each.

A row shows the file's name and size, a progress bar and how its upload went; below, once the
file is listed, the items it looks very like and the tags the image model proposes for it.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import ProgressBar, Static

from protocol.messages.catalogue import ItemCard
from protocol.messages.vision import TagSuggestion
from tui.data.numbers import format_size
from tui.widgets.tag_chips import TagChips


class UploadRow(Vertical):
    """One queued file: its name and size, a progress bar and how it went; below, once it is
    listed, the items it looks very like and the tags proposed for it."""

    DEFAULT_CSS = """
    UploadRow {
        height: auto;
        .line { height: 1; }
        .name { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        .size { width: 9; color: $text-muted; text-align: right; padding-right: 1; }
        ProgressBar { width: 24; }
        ProgressBar Bar { width: 16; }
        .status { width: 26; text-wrap: nowrap; text-overflow: ellipsis; color: $text-muted; }
        &.-done .status { color: $text-success; }
        &.-failed .status { color: $text-error; }
        .warnings { display: none; height: auto; padding-left: 2; color: $text-warning; }
        &.-warned .warnings { display: block; }
    }
    """

    def __init__(self, path: Path, file_size: int) -> None:
        super().__init__()
        self.path = path
        self.file_size = file_size
        #: The item the file became, once uploaded.
        self.item: ItemCard | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="line"):
            yield Static(Content(self.path.name), classes="name")
            yield Static(format_size(self.file_size), classes="size")
            yield ProgressBar(total=max(1, self.file_size), show_eta=False)
            yield Static("queued", classes="status")
        yield Static("", classes="warnings")

    def report(self, text: str, *, done: bool = False, failed: bool = False) -> None:
        """Say how the upload of this file went."""
        self.set_class(done, "-done")
        self.set_class(failed, "-failed")
        self.query_one(".status", Static).update(Content(text))

    def warn(self, warnings: list[str]) -> None:
        """Show what the server noticed about the picture (e.g. items it looks very like)."""
        self.set_class(bool(warnings), "-warned")
        self.query_one(".warnings", Static).update(
            Content("\n".join(f"⚠ {warning}" for warning in warnings))
        )

    async def offer_tags(self, item_id: int, suggestions: list[TagSuggestion]) -> TagChips:
        """Show the model's tag proposals for the new item, as chips to pick."""
        chips = TagChips(item_id, suggestions)
        await self.mount(chips)
        return chips

    @property
    def chips(self) -> TagChips | None:
        """The tag proposals shown, if any."""
        found = self.query(TagChips)
        return found.first() if found else None


class UploadQueue(VerticalScroll):
    """The rows of the files chosen, in the order chosen; a note while there are none."""

    DEFAULT_CSS = """
    UploadQueue {
        #upload-queue-empty { color: $text-muted; padding: 0 1; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        #: The row of each file, by path.
        self.rows: dict[Path, UploadRow] = {}

    def compose(self) -> ComposeResult:
        yield Static("No pictures chosen yet.", id="upload-queue-empty")

    @property
    def total_bytes(self) -> int:
        """The size of every file chosen."""
        return sum(row.file_size for row in self.rows.values())

    def describe(self) -> str:
        """``To upload: 2 pictures · 1.2 MB`` (``To upload`` while empty)."""
        count = len(self.rows)
        if not count:
            return "To upload"
        pictures = f"{count} picture{'s' if count != 1 else ''}"
        return f"To upload: {pictures} · {format_size(self.total_bytes)}"

    async def add(self, path: Path, file_size: int) -> UploadRow:
        """Add a row for ``path`` (or return the one it has)."""
        row = self.rows.get(path)
        if row is None:
            row = UploadRow(path, file_size)
            self.rows[path] = row
            await self.mount(row)
            self._show_note()
        return row

    async def discard(self, path: Path) -> None:
        """Take ``path``'s row away, if it has one."""
        row = self.rows.pop(path, None)
        if row is not None:
            await row.remove()
            self._show_note()

    async def clear(self) -> None:
        """Take every row away."""
        self.rows.clear()
        await self.remove_children(UploadRow)
        self._show_note()

    def _show_note(self) -> None:
        self.query_one("#upload-queue-empty").display = not self.rows


__all__ = ["UploadQueue", "UploadRow"]
