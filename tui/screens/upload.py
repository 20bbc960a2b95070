"""Provides :class:`UploadScreen`: pick pictures, describe them once, upload with progress.

With the server's image model, each file's line also names the items it looks very like
(near-duplicates the server found) and offers the tags the model proposes for the new item, as
chips to pick and add; nothing is added to an item unless the person asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import (
    Button,
    Checkbox,
    DirectoryTree,
    Input,
    Label,
    ProgressBar,
    Static,
)

from protocol.catalogue_client import edit_item, upload_file
from protocol.listing_fields import MAX_TAGS, parse_tags, title_from_filename
from protocol.messages.catalogue import ItemCard, ItemMetadata
from protocol.money import parse_price
from protocol.vision_client import tag_suggestions
from tui.dialogs.edit_item import parse_stock
from tui.feedback import describe_error
from tui.screens.base import PixmartScreen
from tui.widgets.picture_tree import PICTURE_SUFFIXES, PictureTree, is_picture
from tui.widgets.tag_chips import TagChips
from tui.widgets.upload_queue import UploadQueue, UploadRow


@dataclass
class UploadProgress(Message):
    """Bytes the server holds of one queued file."""

    path: Path
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, UploadProgress) and message.path == self.path


@dataclass(frozen=True)
class UploadForm:
    """What the form says about every picture of one upload."""

    title: str
    description: str
    price_cents: int
    stock: int
    tags: list[str]
    public: bool

    def metadata_for(self, path: Path, position: int, count: int) -> ItemMetadata:
        """The listing of one file: a blank title comes from the file name."""
        if not self.title:
            title = title_from_filename(path)
        elif count > 1:
            title = f"{self.title} {position}"
        else:
            title = self.title
        return ItemMetadata(
            title=title[:200],
            description=self.description,
            price_cents=self.price_cents,
            stock=self.stock,
            tags=self.tags,
            public=self.public,
        )


class UploadScreen(PixmartScreen):
    """Sell pictures: choose files, fill in the listing once, and upload them all."""

    TITLE = "Upload"

    DEFAULT_CSS = """
    UploadScreen {
        #upload-body { height: 1fr; }
        #upload-files { width: 2fr; border-right: vkey $panel-lighten-1; padding: 0 1; }
        /* Scrolls when the terminal is too low for the queue, form and buttons (80x24). */
        #upload-side { width: 3fr; padding: 0 1; overflow-y: auto; }
        #upload-body .section { margin-top: 1; }
        PictureTree { height: 1fr; }
        #upload-queue { height: 1fr; min-height: 4; border: round $panel-lighten-1; }
        #upload-form {
            grid-size: 4;
            grid-columns: 12 1fr 10 1fr;
            grid-rows: 3;
            grid-gutter: 0 1;
            height: auto;
        }
        #upload-form Label { height: 3; content-align: left middle; }
        #upload-title, #upload-description { column-span: 3; }
        #upload-overall-row { height: 1; margin-top: 1; display: none; }
        &.-uploading #upload-overall-row, &.-uploaded #upload-overall-row { display: block; }
        #upload-overall-row Label { width: auto; padding-right: 1; }
        #upload-buttons { height: auto; align-horizontal: right; }
        #upload-buttons Button { margin-left: 1; }
        #upload-summary { height: auto; color: $text-muted; }
        #upload-summary.-problem { color: $text-warning; }
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "upload", "Upload all", id="upload.start"),
        Binding("ctrl+l", "clear", "Clear list", id="upload.clear"),
        Binding(
            "ctrl+a",
            "add_folder",
            "Add folder",
            id="upload.add-folder",
            tooltip="Queue every picture in the highlighted folder",
        ),
        Binding(
            "ctrl+t",
            "focus_tags",
            "Suggested tags",
            id="upload.suggested-tags",
            tooltip="Move to the tags the image model proposes for the uploaded pictures",
        ),
    ]

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = root
        self.uploading = False

    def compose_body(self) -> ComposeResult:
        root = self.root or self.pixmart.upload_root
        with Horizontal(id="upload-body"):
            with Vertical(id="upload-files"):
                yield Label("Pictures (Enter adds or removes a file)", classes="section")
                yield PictureTree(root, id="upload-tree")
                yield Input(placeholder="…or type a file or folder path + Enter", id="upload-path")
            with Vertical(id="upload-side"):
                yield Label("To upload", classes="section", id="upload-queue-title")
                yield UploadQueue(id="upload-queue")
                yield Label("Listing (the same for every picture)", classes="section")
                with Grid(id="upload-form"):
                    yield Label("Title")
                    yield Input(placeholder="blank: from each file name", id="upload-title")
                    yield Label("Description")
                    yield Input(placeholder="optional", id="upload-description")
                    yield Label("Price")
                    yield Input(placeholder="e.g. 12.50", id="upload-price")
                    yield Label("Stock")
                    yield Input("1", id="upload-stock", type="integer")
                    yield Label("Tags")
                    yield Input(placeholder="cat, print", id="upload-tags")
                    yield Label("Visibility")
                    yield Checkbox("Public", True, id="upload-public")
                with Horizontal(id="upload-overall-row"):
                    yield Label("Overall")
                    yield ProgressBar(id="upload-overall", show_eta=False)
                with Horizontal(id="upload-buttons"):
                    yield Button("Clear list", id="upload-clear")
                    yield Button("Upload", id="upload-go", variant="primary")
                yield Static("", id="upload-summary")

    def on_mount(self) -> None:
        self.query_one(PictureTree).focus()

    # -- the queue -----------------------------------------------------------------------------

    @property
    def upload_queue(self) -> UploadQueue:
        """The files chosen, one row each."""
        return self.query_one(UploadQueue)

    @property
    def queue(self) -> dict[Path, UploadRow]:
        """The row of each file chosen, in the order chosen."""
        return self.upload_queue.rows

    async def toggle(self, path: Path) -> None:
        """Queue ``path``, or take it off the queue if it is there."""
        if self.uploading:
            return
        if path in self.queue:
            await self.upload_queue.discard(path)
        else:
            await self.add(path)
        self._show_queue()

    async def add(self, path: Path) -> None:
        """Queue one picture (files that are not pictures are refused in words)."""
        path = path.expanduser().resolve()
        if path in self.queue:
            return
        if not path.is_file() or not is_picture(path):
            self.notify(f"{path.name} is not a JPEG, PNG or WebP picture.", severity="warning")
            return
        await self.upload_queue.add(path, path.stat().st_size)
        self._show_queue()

    async def add_folder(self, folder: Path) -> None:
        """Queue every picture directly inside ``folder``."""
        pictures = sorted(p for p in folder.iterdir() if p.is_file() and is_picture(p))
        if not pictures:
            self.notify(f"No pictures in {folder.name}.", severity="warning")
            return
        for path in pictures:
            await self.add(path)
        self._show_queue()

    def _show_queue(self) -> None:
        self.query_one("#upload-queue-title", Label).update(self.upload_queue.describe())

    @on(DirectoryTree.FileSelected)
    async def _file_chosen(self, message: DirectoryTree.FileSelected) -> None:
        message.stop()
        await self.toggle(message.path)

    @on(Input.Submitted, "#upload-path")
    async def _path_typed(self, message: Input.Submitted) -> None:
        text = message.value.strip()
        if not text:
            return
        path = Path(text).expanduser()
        if path.is_dir():
            await self.add_folder(path)
        else:
            await self.add(path)
        message.input.value = ""

    async def action_add_folder(self) -> None:
        """Queue every picture of the highlighted folder."""
        node = self.query_one(PictureTree).cursor_node
        if node is None or node.data is None:
            return
        path = Path(node.data.path)
        await self.add_folder(path if path.is_dir() else path.parent)

    @on(Button.Pressed, "#upload-clear")
    async def action_clear(self) -> None:
        """Empty the queue."""
        if self.uploading:
            return
        await self.upload_queue.clear()
        self.query_one("#upload-summary", Static).update("")
        self.remove_class("-uploaded")
        self._show_queue()

    # -- uploading -----------------------------------------------------------------------------

    def form(self) -> UploadForm:
        """What the form says.

        Raises:
            ValueError: a field is not valid; the message says which.
        """
        currency = self.pixmart.currency
        price_text = self.query_one("#upload-price", Input).value.strip()
        if not price_text:
            raise ValueError("Enter a price, e.g. 12.50 (0 to give the pictures away)")
        return UploadForm(
            title=self.query_one("#upload-title", Input).value.strip(),
            description=self.query_one("#upload-description", Input).value.strip(),
            price_cents=parse_price(price_text, currency),
            stock=parse_stock(self.query_one("#upload-stock", Input).value or "1"),
            tags=parse_tags(self.query_one("#upload-tags", Input).value),
            public=self.query_one("#upload-public", Checkbox).value,
        )

    @on(Button.Pressed, "#upload-go")
    def action_upload(self) -> None:
        """Upload every queued picture with the listing from the form."""
        if self.uploading:
            return
        if not self.queue:
            self.notify("Choose pictures first (Enter on a file).", severity="warning")
            return
        try:
            form = self.form()
        except ValueError as exc:
            self.notify(str(exc), title="Upload", severity="warning")
            return
        self._upload(form)

    @work(exclusive=True, group="upload")
    async def _upload(self, form: UploadForm) -> None:
        app = self.pixmart
        rows = list(self.queue.values())
        total = sum(max(1, row.file_size) for row in rows)
        overall = self.query_one("#upload-overall", ProgressBar)
        overall.update(total=total, progress=0)
        self.uploading = True
        self.add_class("-uploading")
        self.query_one("#upload-go", Button).disabled = True
        listed = duplicates = failed = alike = suggested = 0
        finished_bytes = 0
        try:
            session = app.require_session()
            for position, row in enumerate(rows, start=1):
                row.report("uploading…")
                metadata = form.metadata_for(row.path, position, len(rows))
                base = finished_bytes

                def progress(done: int, size: int, row: UploadRow = row, base: int = base) -> None:
                    self.post_message(UploadProgress(row.path, done, size))
                    overall.update(progress=base + done)

                try:
                    created = await upload_file(session, row.path, metadata, progress=progress)
                except Exception as exc:
                    failed += 1
                    row.report(f"failed: {describe_error(exc)}", failed=True)
                else:
                    row.item = created.item
                    if created.duplicate:
                        duplicates += 1
                        row.report(f"already listed (#{created.item.id})", done=True)
                    else:
                        listed += 1
                        row.report(f"listed as #{created.item.id}", done=True)
                    row.warn(created.warnings)
                    alike += bool(created.warnings)
                    if not created.duplicate and await self._offer_tags(row, created.item):
                        suggested += 1
                finished_bytes += max(1, row.file_size)
                overall.update(progress=finished_bytes)
                row.query_one(ProgressBar).update(progress=max(1, row.file_size))
        except Exception as exc:
            app.report_failure(exc)
        finally:
            self.uploading = False
            self.remove_class("-uploading")
            self.add_class("-uploaded")
            self.query_one("#upload-go", Button).disabled = False
        self._summarise(listed, duplicates, failed, alike=alike, suggested=suggested)
        self.refresh_bindings()
        focused = self.focused
        if (
            focused is None
            or isinstance(focused, Button)
            or focused in self.query("#upload-form *")
        ):
            self.action_focus_tags()  # the listing is done: the proposals are what comes next

    async def _offer_tags(self, row: UploadRow, item: ItemCard) -> bool:
        """Fetch the model's tag proposals for a new item and offer them; returns whether any
        were offered (a server without the model, or none proposed, offers nothing)."""
        if not self.pixmart.has_vision or row.chips is not None:
            return False
        try:
            suggestions = await tag_suggestions(self.pixmart.require_session(), item.id)
        except Exception:
            return False  # proposals are a nicety: the item is listed either way
        if not suggestions:
            return False
        await row.offer_tags(item.id, suggestions)
        return True

    @property
    def open_chips(self) -> list[TagChips]:
        """The tag proposals still to be answered, in queue order."""
        return [
            chips
            for row in self.queue.values()
            if (chips := row.chips) is not None and chips.state == "open"
        ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_tags":
            return bool(self.open_chips)
        return True

    def action_focus_tags(self) -> None:
        """Move to the next tag proposals still open."""
        chips = self.open_chips
        if not chips:
            return
        focused = self.focused
        later = chips[chips.index(focused) + 1 :] if focused in chips else []
        (later or chips)[0].focus()

    @on(TagChips.Accepted)
    def _tags_accepted(self, message: TagChips.Accepted) -> None:
        message.stop()
        row = next((row for row in self.queue.values() if row.chips is message.chips), None)
        if row is None or row.item is None:
            message.chips.reopen()
            return
        self._add_tags(row, message.chips, message.tags)

    @work(group="add-tags")
    async def _add_tags(self, row: UploadRow, chips: TagChips, tags: list[str]) -> None:
        """Add the accepted tags to the item, keeping the tags it has."""
        item = row.item
        assert item is not None
        carried = {tag.casefold() for tag in item.tags}
        new = [tag for tag in tags if tag.casefold() not in carried]
        if len(item.tags) + len(new) > MAX_TAGS:
            self.notify(
                f"An item carries at most {MAX_TAGS} tags; pick fewer.",
                title="Tags",
                severity="warning",
            )
            chips.reopen()
            return
        try:
            row.item = await edit_item(
                self.pixmart.require_session(), item.id, tags=[*item.tags, *new]
            )
        except Exception as exc:
            self.pixmart.report_failure(exc)
            chips.reopen()
            return
        had_focus = chips.has_focus
        chips.added(tags)
        self.refresh_bindings()
        if had_focus:
            self.action_focus_tags()  # on to the next proposals, if any
        self.notify(
            f"Added {', '.join(tags)} to “{row.item.title}”.", title="Tags", timeout=3, markup=False
        )

    @on(UploadProgress)
    def _progress(self, message: UploadProgress) -> None:
        row = self.queue.get(message.path)
        if row is not None:
            row.query_one(ProgressBar).update(total=max(1, message.total), progress=message.done)

    def _summarise(
        self, listed: int, duplicates: int, failed: int, *, alike: int = 0, suggested: int = 0
    ) -> None:
        parts = [f"{listed} listed"]
        if duplicates:
            parts.append(f"{duplicates} already listed")
        if alike:
            parts.append(f"{alike} near-duplicate{'s' if alike != 1 else ''}")
        if failed:
            parts.append(f"{failed} failed")
        text = " · ".join(parts)
        summary = self.query_one("#upload-summary", Static)
        summary.set_class(bool(failed or alike), "-problem")
        words = f"Done: {text}."
        if suggested:
            words += " Tags are proposed above (ctrl+t): space picks, a picks all, Enter adds."
        summary.update(Content(words))
        self.notify(f"Upload done: {text}.", severity="warning" if failed else "information")


__all__ = [
    "PICTURE_SUFFIXES",
    "PictureTree",
    "UploadForm",
    "UploadScreen",
    "is_picture",
]
