"""Provides :class:`KeyFooter`: Textual's footer, its keys flowing onto more rows as needed."""

from __future__ import annotations

from textual.layout import Layout
from textual.widgets import Footer

from tui.widgets.flow_layout import FlowLayout


class KeyFooter(Footer):
    """The footer of every pixmart screen: every shown key of the screen and of the app.

    Textual's footer keeps its keys on one row and clips what does not fit, so at 80 columns
    most screens lost their app-wide keys. This one lays its keys out with
    :class:`~tui.widgets.flow_layout.FlowLayout` and takes as many rows as they need: it
    re-flows when the terminal is resized, and when the bindings change (another screen, a key
    enabled or hidden) Footer recomposes its keys as always. The screen's own keys come first,
    the app-wide ones after (the order of :attr:`textual.screen.Screen.active_bindings`), and the
    command palette key last, in the flow rather than docked to the right of the first row.
    """

    DEFAULT_CSS = """
    KeyFooter {
        height: auto;
        /* Bounded, so a screen with a key too many still shows its content; the footer test
           holds every screen to what fits at 80x24. */
        max-height: 4;
        FooterKey.-command-palette {
            dock: none;
        }
    }
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's own argument name
        classes: str | None = None,
        compact: bool = True,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, compact=compact)
        self._flow = FlowLayout()

    @property
    def layout(self) -> Layout:
        """Arranges the keys (in place of the ``horizontal`` layout of Footer's CSS)."""
        return self._flow


__all__ = ["KeyFooter"]
