"""Provides :class:`PixmartScreen`: a screen with the status header and the key footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from tui.app import PixmartApp


class PixmartScreen(Screen[None]):
    """Base of the full screens: header on top, footer with the keys at the bottom.

    Subclasses implement :meth:`compose_body`.
    """

    def compose(self) -> ComposeResult:
        yield StatusHeader()
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        """The widgets between the header and the footer."""
        yield from ()

    @property
    def pixmart(self) -> PixmartApp:
        """The app, typed."""
        return cast("PixmartApp", self.app)


__all__ = ["PixmartScreen"]
