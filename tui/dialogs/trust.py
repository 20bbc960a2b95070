"""Provides the certificate dialogs: trust a new server, and the warning for a changed one."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


def grouped_fingerprint(fingerprint: str) -> str:
    """The fingerprint on two lines of 16 hex pairs, easier to compare by eye."""
    pairs = fingerprint.split(":")
    return "\n".join(":".join(pairs[i : i + 16]) for i in range(0, len(pairs), 16))


class TrustDialog(ModalScreen[bool]):
    """Asks whether to trust a server seen for the first time; dismisses with the answer."""

    DEFAULT_CSS = """
    TrustDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 76;
            height: auto;
            padding: 1 2;
            border: thick $warning;
            background: $surface;
        }
        .title { text-style: bold; width: 100%; margin-bottom: 1; }
        .fingerprint {
            width: 100%;
            padding: 0 1;
            margin: 1 0;
            background: $boost;
            color: $text-warning;
            text-style: bold;
        }
        .help { color: $text-muted; width: 100%; }
        Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
        Button { margin-left: 2; }
    }
    """

    BINDINGS = [
        Binding("y", "trust", "Trust", id="trust.accept"),
        Binding("n,escape", "refuse", "Don't trust", id="trust.refuse"),
    ]

    def __init__(self, server: str, fingerprint: str) -> None:
        super().__init__()
        self.server = server
        self.fingerprint = fingerprint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"First contact with {self.server}", classes="title")
            yield Static(
                "pixmart has never connected to this server. Its certificate has the SHA-256 "
                "fingerprint:",
                classes="help",
            )
            yield Static(grouped_fingerprint(self.fingerprint), classes="fingerprint")
            yield Static(
                "Compare it with the fingerprint the server printed when it started. Trust this "
                "server and remember its certificate?",
                classes="help",
            )
            with Horizontal():
                yield Button("Don't trust", id="refuse", variant="default")
                yield Button("Trust and remember", id="trust", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    @on(Button.Pressed, "#trust")
    def action_trust(self) -> None:
        """Trust the server and pin its fingerprint."""
        self.dismiss(True)

    @on(Button.Pressed, "#refuse")
    def action_refuse(self) -> None:
        """Do not connect."""
        self.dismiss(False)


class FingerprintChangedDialog(ModalScreen[None]):
    """Warns that a known server presented a different certificate; nothing was sent to it."""

    DEFAULT_CSS = """
    FingerprintChangedDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 80;
            height: auto;
            padding: 1 2;
            border: thick $error;
            background: $surface;
        }
        .title { text-style: bold; color: $text-error; width: 100%; margin-bottom: 1; }
        .label { color: $text-muted; width: 100%; margin-top: 1; }
        .fingerprint { width: 100%; padding: 0 1; background: $boost; text-style: bold; }
        #presented { color: $text-error; }
        .help { width: 100%; margin-top: 1; }
        Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    }
    """

    BINDINGS = [Binding("escape,enter", "close", "Close", id="mismatch.close")]

    def __init__(self, server: str, pinned: str, presented: str) -> None:
        super().__init__()
        self.server = server
        self.pinned = pinned
        self.presented = presented

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"⚠ The certificate of {self.server} has CHANGED", classes="title")
            yield Static(
                "pixmart did not connect and sent nothing. This may be an attack, or the server "
                "was reinstalled.",
                classes="help",
            )
            yield Static("Remembered fingerprint:", classes="label")
            yield Static(grouped_fingerprint(self.pinned), classes="fingerprint", id="pinned")
            yield Static("Fingerprint presented now:", classes="label")
            yield Static(grouped_fingerprint(self.presented), classes="fingerprint", id="presented")
            yield Static(
                "If you are sure the new certificate is right, start pixmart with "
                "--trust and the new fingerprint.",
                classes="help",
            )
            with Horizontal():
                yield Button("Close", id="close", variant="error")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Close the warning."""
        self.dismiss(None)


__all__ = ["FingerprintChangedDialog", "TrustDialog", "grouped_fingerprint"]
