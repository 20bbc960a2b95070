"""Tests of :func:`tui.widgets.sixel_picture.palette_first` on textual-image's own sixels."""

from __future__ import annotations

import re

from PIL import Image, ImageDraw
from textual_image._sixel import image_to_sixels

from tui.widgets.sixel_picture import palette_first

DEFINITION = re.compile(r"#\d+;2;\d+;\d+;\d+")


def _three_colours(height: int) -> Image.Image:
    picture = Image.new("RGB", (120, height), (200, 30, 30))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, height // 2, 120, height), fill=(30, 30, 200))
    draw.rectangle((60, 0, 120, height), fill=(30, 200, 30))
    return picture


def test_every_colour_is_defined_before_the_first_pixel() -> None:
    sixels = image_to_sixels(_three_colours(40))
    moved = palette_first(sixels)
    header, data = re.split(r'(?<="1;1;120;40)', moved, maxsplit=1)
    definitions = DEFINITION.findall(data)
    assert len(definitions) == 3 and data.startswith("".join(definitions))
    assert not DEFINITION.search(data[len("".join(definitions)) :])
    assert sorted(definitions) == sorted(DEFINITION.findall(sixels))


def test_the_pixels_and_their_colours_stay_the_same() -> None:
    sixels = image_to_sixels(_three_colours(41))
    moved = palette_first(sixels)
    # With the definitions written as plain selections, both say the same thing.
    assert DEFINITION.sub(lambda m: m.group(0).split(";")[0], sixels) == DEFINITION.sub(
        "", moved
    )


def test_sixels_without_definitions_are_left_alone() -> None:
    plain = '\x1bP0;0;0q"1;1;2;6#1!2~-\x1b\\'
    assert palette_first(plain) == plain
