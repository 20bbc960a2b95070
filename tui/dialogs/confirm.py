"""Provides :class:`ConfirmDialog`: a yes/no question that dismisses with the answer."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmDialog(ModalScreen[bool]):
    """Asks a question; ``True`` for yes, ``False`` for no or escape.

    Args:
        title: the question, e.g. ``"Delete 3 items?"``.
        detail: what will happen, in a sentence or two.
        confirm_label: the label of the yes button, e.g. ``"Delete"``.
        dangerous: colour the yes button as destructive.
    """

    DEFAULT_CSS = """
    ConfirmDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 64;
            height: auto;
            padding: 1 2;
            border: thick $primary;
            background: $surface;
        }
        &.-dangerous > Vertical { border: thick $error; }
        .title { text-style: bold; width: 100%; }
        .detail { width: 100%; margin-top: 1; color: $text-muted; }
        Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
        Button { margin-left: 2; }
    }
    """

    BINDINGS = [
        Binding("y", "confirm", "Yes", id="confirm.yes"),
        Binding("n,escape", "cancel", "No", id="confirm.no"),
    ]

    def __init__(
        self, title: str, detail: str = "", *, confirm_label: str = "Yes", dangerous: bool = False
    ) -> None:
        super().__init__(classes="-dangerous" if dangerous else None)
        self.question = title
        self.detail = detail
        self.confirm_label = confirm_label
        self.dangerous = dangerous

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, classes="title")
            if self.detail:
                yield Static(self.detail, classes="detail")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(
                    self.confirm_label,
                    id="confirm",
                    variant="error" if self.dangerous else "primary",
                )

    def on_mount(self) -> None:
        # The safe answer has the focus: a stray Enter does not destroy anything.
        self.query_one("#cancel" if self.dangerous else "#confirm", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        """Answer yes."""
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Answer no."""
        self.dismiss(False)


__all__ = ["ConfirmDialog"]
