"""Provides a one-picture app for the real-terminal tests: a card-sized :class:`Picture` on black.

Run as ``python -m tests.support.picture_app PICTURE REPORT``: it shows ``PICTURE`` the way the
gallery's cards do (the renderer :func:`tui.widgets.picture.image_widget_class` picks, in a
24x8 cell box) in the middle of a black screen, and once the picture has been drawn writes the
name of the image widget class to ``REPORT``. ``q`` quits.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Terminal detection before Textual owns the terminal, as the launcher does.
import textual_image.widget  # noqa: F401
from PIL import Image
from textual.app import App, ComposeResult

from tui.widgets.picture import Picture

#: The box the picture is fitted into, in cells (a gallery card's picture area).
BOX = (24, 8)


class PictureApp(App[None]):
    """One picture, centred, on a black screen with nothing else drawn."""

    CSS = f"""
    Screen {{ background: #000000; align: center middle; }}
    Picture {{ width: {BOX[0]}; height: {BOX[1]}; background: #000000; }}
    """
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, picture: Image.Image, report: Path) -> None:
        super().__init__()
        self._picture = picture
        self._report = report

    def compose(self) -> ComposeResult:
        yield Picture("")

    async def on_mount(self) -> None:
        picture = self.query_one(Picture)
        await picture.show(self._picture)
        image = picture.children[0]
        self.call_after_refresh(self._report.write_text, type(image).__name__)


def main(argv: list[str]) -> int:
    """Show ``argv[0]``, report to ``argv[1]``."""
    picture = Image.open(argv[0])
    picture.load()
    PictureApp(picture.convert("RGB"), Path(argv[1])).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
