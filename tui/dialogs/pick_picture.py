"""Provides :class:`PickPictureDialog`: choose a picture file to search with.

A tree of the folders and pictures under a start folder (the working directory), and a field to
type a path in, which Tab completes. Enter on a picture in the tree, or on a typed picture path,
chooses it; a typed folder becomes the tree's root. Dismisses with the path, or ``None``.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Static

from tui.widgets.picture_tree import PathInput, PictureTree, is_picture, resolve_typed

#: Completions listed under the path field at most.
SHOWN_CHOICES = 8


def leaf(path_text: str) -> str:
    """The last part of a typed path: ``photos/cats/`` → ``cats/``, ``a/cat.jpg`` → ``cat.jpg``."""
    name = path_text.rstrip("/").rpartition("/")[2]
    return f"{name}/" if path_text.endswith("/") else name


class PickPictureDialog(ModalScreen[Path | None]):
    """Pick a JPEG, PNG or WebP picture by browsing or by typing its path.

    Args:
        root: where the tree starts and typed relative paths start from.
        filters: words for the search filters that will apply, e.g. ``tags: cat · in stock``.
    """

    DEFAULT_CSS = """
    PickPictureDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 90;
            height: 85%;
            border: thick $primary;
            border-title-align: center;
            background: $surface;
            padding: 0 1;
        }
        #pick-help { color: $text-muted; margin-bottom: 1; }
        PictureTree { height: 1fr; border: round $panel-lighten-1; }
        #pick-path { margin-top: 1; }
        #pick-note { height: auto; color: $text-muted; padding: 0 1; }
        #pick-note.-problem { color: $text-warning; }
        #pick-filters { height: auto; color: $text-muted; padding: 0 1; }
        Horizontal { height: auto; align-horizontal: right; }
        Button { margin-left: 2; }
    }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="pick.cancel"),
        Binding(
            "ctrl+l",
            "focus_path",
            "Type a path",
            id="pick.path",
            tooltip="Type the picture's path; Tab completes it",
        ),
    ]

    def __init__(self, root: Path, *, filters: str = "") -> None:
        super().__init__()
        self.root = root
        self.filters = filters

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Search by picture"
            yield Static(
                "Find items that look like a picture of yours: Enter on a picture in the tree, "
                "or type its path below (ctrl+l goes there, Tab completes). Esc cancels.",
                id="pick-help",
            )
            yield PictureTree(self.root, id="pick-tree")
            yield PathInput(
                self.root,
                placeholder="Path to a picture, e.g. photos/cat.jpg (Tab completes)",
                id="pick-path",
            )
            yield Static("", id="pick-note")
            yield Static(
                Content(
                    f"Filters from the search form apply: {self.filters}."
                    if self.filters
                    else "No filters: every item you may see is compared."
                ),
                id="pick-filters",
            )
            with Horizontal():
                yield Button("Cancel", id="pick-cancel")
                yield Button("Search", id="pick-search", variant="primary")

    def on_mount(self) -> None:
        self.query_one(PictureTree).focus()

    # -- choosing ------------------------------------------------------------------------------

    def say(self, text: str, *, problem: bool = False) -> None:
        """Show a note under the path field."""
        note = self.query_one("#pick-note", Static)
        note.set_class(problem, "-problem")
        note.update(Content(text))

    def choose(self, text: str) -> None:
        """Search with the typed path if it is a picture; open it in the tree if a folder."""
        if not text.strip():
            self.say("Type a path first, or pick a picture in the tree.", problem=True)
            return
        path = resolve_typed(text, self.root)
        if path.is_dir():
            self.query_one(PictureTree).path = path
            self.say(f"Showing {path}.")
            return
        if not path.is_file():
            self.say(f"There is no file {text.strip()}.", problem=True)
            return
        if not is_picture(path):
            self.say(f"{path.name} is not a JPEG, PNG or WebP picture.", problem=True)
            return
        self.dismiss(path)

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, message: DirectoryTree.FileSelected) -> None:
        message.stop()
        self.dismiss(message.path)

    @on(PathInput.Submitted, "#pick-path")
    def _path_submitted(self, message: PathInput.Submitted) -> None:
        message.stop()
        self.choose(message.value)

    @on(PathInput.Completions)
    def _completions(self, message: PathInput.Completions) -> None:
        choices = message.choices
        if not choices:
            self.say("No folder or picture starts like that.", problem=True)
            return
        names = [leaf(choice) for choice in choices]
        shown = "  ".join(names[:SHOWN_CHOICES])
        more = len(names) - SHOWN_CHOICES
        self.say(f"{shown}  …and {more} more" if more > 0 else shown)

    @on(Button.Pressed, "#pick-search")
    def _search_pressed(self) -> None:
        typed = self.query_one("#pick-path", PathInput).value
        if typed.strip():
            self.choose(typed)
            return
        node = self.query_one(PictureTree).cursor_node
        if node is not None and node.data is not None and is_picture(Path(node.data.path)):
            self.dismiss(Path(node.data.path))
            return
        self.say("Pick a picture in the tree, or type its path.", problem=True)

    @on(Button.Pressed, "#pick-cancel")
    def action_cancel(self) -> None:
        """Close without searching."""
        self.dismiss(None)

    def action_focus_path(self) -> None:
        """Move to the path field."""
        self.query_one("#pick-path", PathInput).focus()


__all__ = ["PickPictureDialog", "leaf"]
