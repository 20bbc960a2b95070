"""Provides :class:`PixmartScreen`: a screen with the status header and the key footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen

from tui.context import ShopNode
from tui.widgets.key_footer import KeyFooter
from tui.widgets.status_header import StatusHeader


class PixmartScreen(ShopNode, Screen[None]):
    """Base of the full screens: header on top, footer with the keys at the bottom.

    Subclasses implement :meth:`compose_body`.
    """

    def compose(self) -> ComposeResult:
        yield StatusHeader()
        yield from self.compose_body()
        yield KeyFooter(compact=True)

    def compose_body(self) -> ComposeResult:
        """The widgets between the header and the footer."""
        yield from ()


__all__ = ["PixmartScreen"]
