"""Provides :class:`SixelPicture`: textual-image's Sixel widget with its colours defined first.

textual-image defines each colour register where the colour is first used, in the middle of the
pixel data. xterm (``-ti vt340``) paints a band in which a register is defined with the wrong
colours, so every thumbnail got a band of stray pixels along its top edge (where most colours
are first used) and odd stripes further down. Defining the whole palette right after the raster
attributes, as libsixel does, draws the same picture correctly in every Sixel terminal.
"""

from __future__ import annotations

import re

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual_image._sixel import BackgroundColor
from textual_image.widget import SixelImage, SixelOptions
from textual_image.widget.sixel import _ImageSixelImpl

#: ``#register;2;red;green;blue``: a colour register defined (and selected) in RGB percentages.
_DEFINITION = re.compile(r"#(\d+);2;\d+;\d+;\d+")
#: ``"pan;pad;width;height``: the raster attributes after the ``q`` that opens the sixel data.
_RASTER = re.compile(r'"\d+;\d+;\d+;\d+')


def palette_first(sixels: str) -> str:
    """The same sixel picture with every colour register defined before the first pixel.

    A definition in the data also selects its register, so each becomes a plain selection where
    it stood. Sixel data bytes are ``?`` to ``~``, never digits or ``;``, so a definition cannot
    be confused with a selection followed by data.
    """
    definitions: dict[str, str] = {}
    for match in _DEFINITION.finditer(sixels):
        definitions.setdefault(match.group(1), match.group(0))
    if not definitions:
        return sixels
    body = _DEFINITION.sub(r"#\1", sixels)
    raster = _RASTER.search(body)
    start = raster.end() if raster is not None else body.index("q") + 1
    return body[:start] + "".join(definitions.values()) + body[start:]


class _PaletteFirstSixels(_ImageSixelImpl):
    """textual-image's sixel drawing, with the palette moved to the front.

    The drawing widget is private to textual-image, but its encoding step is a method of its
    own so that it can be replaced; only that step changes here.
    """

    def _image_to_sixels(
        self,
        image: PILImage.Image,
        sixel_options: SixelOptions | None = None,
        background: BackgroundColor | None = None,
    ) -> str:
        return palette_first(super()._image_to_sixels(image, sixel_options, background))


class SixelPicture(SixelImage, Renderable=SixelImage._Renderable):
    """A picture drawn in Sixel graphics with its colour palette defined first."""

    def compose(self) -> ComposeResult:
        yield _PaletteFirstSixels(self.image, self._sixel_options)


__all__ = ["SixelPicture", "palette_first"]
