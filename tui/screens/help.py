"""Provides :class:`HelpScreen`: every key of the current screen and of the app, explained."""

from __future__ import annotations

from itertools import groupby

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.keys import KeyCommand


def _table(commands: list[KeyCommand]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", min_width=12)
    table.add_column()
    for command in commands:
        description = Text(command.description)
        if command.tooltip:
            description.append(f"  {command.tooltip}", style="dim")
        if not command.enabled:
            description.append("  (not available now)", style="dim italic")
        table.add_row(command.keys, description)
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the described bindings in reach on the screen it was opened from.

    Args:
        screen_title: the title of that screen.
        commands: its bindings, from :func:`tui.keys.key_commands`.
    """

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 84;
            max-height: 90%;
            height: auto;
            border: thick $primary;
            border-title-align: center;
            background: $surface;
            padding: 0 1;
        }
        VerticalScroll { height: auto; max-height: 100%; }
        .section { margin-top: 1; width: 100%; }
        .keys { width: 100%; }
        #help-footer { color: $text-muted; margin-top: 1; width: 100%; text-align: center; }
    }
    """

    BINDINGS = [Binding("escape,question_mark,q,f1", "close", "Close help", id="help.close")]

    def __init__(self, screen_title: str, commands: list[KeyCommand]) -> None:
        super().__init__()
        self.screen_title = screen_title
        self.commands = commands

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"Keys · {self.screen_title}"
            with VerticalScroll():
                for section, entries in groupby(self.commands, key=lambda c: c.section):
                    yield Label(section, classes="section")
                    yield Static(_table(list(entries)), classes="keys")
                yield Static(
                    "ctrl+p: every command in a palette · esc: close",
                    id="help-footer",
                )

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


__all__ = ["HelpScreen"]
