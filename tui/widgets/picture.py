"""Provides :class:`Picture`: a slot that shows a picture with the terminal's best graphics.

Kitty graphics or Sixel where the terminal has them, coloured half-blocks elsewhere (tmux and
GNU screen included, which do not pass graphics through reliably, and kitty before 0.28, which
answers the graphics query but cannot draw textual-image's placeholders). ``PIXMART_GRAPHICS``
forces one of ``auto``, ``kitty``, ``sixel``, ``halfcell`` or ``unicode``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static
from textual_image.renderable import Image as AutoRenderable
from textual_image.renderable import TGPImage as KittyRenderable
from textual_image.widget import HalfcellImage, SixelImage, TGPImage, UnicodeImage
from textual_image.widget import Image as AutoImage

from tui.terminal import draws_kitty_placeholders, terminal_version
from tui.widgets.sixel_picture import SixelPicture

#: Whether textual-image found the Kitty graphics protocol (and no Sixel).
AUTO_IS_KITTY = AutoRenderable is KittyRenderable
if AUTO_IS_KITTY:
    # Ask now, while the terminal can still answer: Textual's input thread takes the replies.
    terminal_version()


def image_widget_class() -> Callable[..., Widget]:
    """The image widget class for this terminal (see the module docs)."""
    choice = os.environ.get("PIXMART_GRAPHICS", "auto").strip().lower()
    forced: dict[str, Callable[..., Widget]] = {
        "kitty": TGPImage,
        "tgp": TGPImage,
        "sixel": SixelPicture,
        "halfcell": HalfcellImage,
        "unicode": UnicodeImage,
    }
    if choice in forced:
        return forced[choice]
    if os.environ.get("TMUX") or os.environ.get("TERM", "").startswith("screen"):
        return HalfcellImage
    if AUTO_IS_KITTY and not draws_kitty_placeholders(terminal_version()):
        return HalfcellImage
    if AutoImage is SixelImage:
        return SixelPicture
    return AutoImage


class Picture(Widget):
    """Shows one picture, or a placeholder text while there is none.

    The image widget is made anew whenever the picture changes: the graphics protocols keep
    per-widget state (placements, cached sixels) that must not outlive the picture.
    """

    DEFAULT_CSS = """
    Picture {
        height: 1fr;
        width: 1fr;
        align: center middle;
        & > .image { width: auto; height: auto; }
        & > .placeholder {
            width: 1fr;
            height: 1fr;
            content-align: center middle;
            color: $text-muted;
        }
    }
    """

    def __init__(
        self,
        placeholder: str = "…",
        *,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._placeholder = placeholder
        self._picture: PILImage.Image | None = None

    @property
    def picture(self) -> PILImage.Image | None:
        """The picture shown, if any."""
        return self._picture

    def compose(self) -> ComposeResult:
        yield Static(Content(self._placeholder), classes="placeholder")

    async def show(self, picture: PILImage.Image | None, placeholder: str | None = None) -> None:
        """Show ``picture`` (or the placeholder when ``None``)."""
        same_placeholder = placeholder is None or placeholder == self._placeholder
        if picture is self._picture and (picture is not None or same_placeholder):
            return
        if placeholder is not None:
            self._placeholder = placeholder
        self._picture = picture
        await self.remove_children()
        if picture is None:
            await self.mount(Static(Content(self._placeholder), classes="placeholder"))
        else:
            image = image_widget_class()(picture, classes="image")
            await self.mount(image)


__all__ = ["Picture", "image_widget_class"]
