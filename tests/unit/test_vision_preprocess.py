"""Tests for the preprocessing every picture goes through before the network."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from backend.vision.preprocess import crop_to_content, preprocess


def _reopen(image: Image.Image, fmt: str, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return Image.open(buffer)


def test_transparent_cutout_is_composited_onto_white() -> None:
    # A product cut-out: transparent background whose hidden colour is black.
    cutout = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    cutout.paste((200, 30, 30, 255), (150, 100, 250, 200))
    result = preprocess(_reopen(cutout, "PNG"))
    assert result.shape == (224, 224, 3) and result.dtype == np.uint8
    for corner in (result[0, 0], result[0, -1], result[-1, 0], result[-1, -1]):
        np.testing.assert_array_equal(corner, [255, 255, 255])
    np.testing.assert_array_equal(result[112, 112], [200, 30, 30])


def test_palette_picture_with_transparency_is_composited_onto_white() -> None:
    cutout = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    cutout.paste((0, 0, 255, 255), (64, 64, 192, 192))
    palette = _reopen(cutout.convert("P", palette=Image.Palette.ADAPTIVE), "GIF",
                      transparency=0)
    result = preprocess(palette)
    assert (result[0, 0] > 240).all()


def test_wide_picture_is_kept_whole_between_white_bars() -> None:
    # Three vertical bands: all three must survive (a centre crop kept only the middle one).
    wide = np.zeros((300, 900, 3), np.uint8)
    wide[:, :300] = (255, 0, 0)
    wide[:, 300:600] = (0, 255, 0)
    wide[:, 600:] = (0, 0, 255)
    result = preprocess(Image.fromarray(wide)).astype(int)
    assert result.shape == (224, 224, 3)
    middle = 112
    np.testing.assert_array_equal(result[middle, 30], [255, 0, 0])
    np.testing.assert_array_equal(result[middle, 112], [0, 255, 0])
    np.testing.assert_array_equal(result[middle, 194], [0, 0, 255])
    # 900 x 300 becomes 224 x 75, centred: white above and below.
    assert (result[:70] == 255).all() and (result[-70:] == 255).all()


def test_tall_picture_is_kept_whole_between_white_bars() -> None:
    tall = np.zeros((800, 200, 3), np.uint8)
    tall[:400] = (255, 0, 0)
    tall[400:] = (0, 0, 255)
    result = preprocess(Image.fromarray(tall)).astype(int)
    np.testing.assert_array_equal(result[10, 112], [255, 0, 0])
    np.testing.assert_array_equal(result[-10, 112], [0, 0, 255])
    # 200 x 800 becomes 56 x 224, centred: white left and right.
    assert (result[:, :80] == 255).all() and (result[:, -80:] == 255).all()


def test_exif_orientation_is_applied() -> None:
    # Stored sideways (top red, bottom blue) with "rotate 90 CW" in EXIF: upright the red
    # half is on the right (Orientation 6 = display rotated 90 degrees clockwise).
    stored = np.zeros((200, 300, 3), np.uint8)
    stored[:100] = (255, 0, 0)
    stored[100:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = _reopen(Image.fromarray(stored), "JPEG", exif=exif, quality=95)
    result = preprocess(photo).astype(int)
    assert result[112, 160, 0] > 200 and result[112, 160, 2] < 60  # right: red
    assert result[112, 64, 2] > 200 and result[112, 64, 0] < 60  # left: blue


def test_greyscale_and_tiny_pictures_become_rgb_224() -> None:
    grey = Image.fromarray(np.full((10, 30), 77, np.uint8), mode="L")
    result = preprocess(grey)
    assert result.shape == (224, 224, 3)
    assert (result[112] == 77).all()  # scaled up to the full width
    assert (result[0] == 255).all()  # the bars above and below stay white


def test_input_picture_is_not_modified() -> None:
    original = Image.new("RGBA", (50, 80), (10, 20, 30, 0))
    preprocess(original)
    assert original.mode == "RGBA" and original.size == (50, 80)


def test_small_drawing_on_a_wide_white_canvas_is_cropped_to_its_content() -> None:
    # A 60 x 40 blue drawing in the corner of an 800 x 600 white page: the network should see
    # the drawing, not the page.
    page = np.full((600, 800, 3), 255, np.uint8)
    page[500:540, 700:760] = (0, 0, 255)
    result = preprocess(Image.fromarray(page)).astype(int)
    # Cropped to 60 x 40 plus a margin of 8% of 60 (5 px) each side: 70 x 50 scaled to 224 wide.
    blue = (result[:, :, 2] > 200) & (result[:, :, 0] < 60)
    assert blue[112, 20:204].all()
    assert blue.sum() > 0.5 * 224 * 224 * 40 / 70  # most of the letterboxed strip


def test_cut_out_on_transparency_is_cropped_like_one_on_white() -> None:
    cutout = Image.new("RGBA", (500, 500), (0, 0, 0, 0))
    cutout.paste((30, 160, 30, 255), (400, 10, 480, 90))
    on_white = Image.new("RGB", (500, 500), (255, 255, 255))
    on_white.paste((30, 160, 30), (400, 10, 480, 90))
    np.testing.assert_array_equal(preprocess(_reopen(cutout, "PNG")), preprocess(on_white))


def test_crop_to_content_keeps_pictures_without_a_white_margin_and_blank_ones() -> None:
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 200, (120, 160, 3), np.uint8))
    assert crop_to_content(photo) is photo
    blank = Image.new("RGB", (64, 48), (255, 255, 255))
    assert crop_to_content(blank) is blank
    # Faint JPEG-like noise on white is background, not content.
    faint = np.full((100, 100, 3), 250, np.uint8)
    faint[40:60, 40:60] = (10, 10, 10)
    cropped = crop_to_content(Image.fromarray(faint))
    assert cropped.size == (24, 24)  # 20 px of content plus 2 px (8% of 20) each side
