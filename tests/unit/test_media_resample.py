"""Tests for backend.media.resample: exact sizes, Pillow's Lanczos look, modes it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from backend.media.resample import Resampler, lanczos
from tests.unit.test_media_samples import halves


def textured(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A picture with gradients and fine detail, so resampling differences would show."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(width * 7 + height)
    channels = [
        (x * 255 // max(1, width - 1)),
        (y * 255 // max(1, height - 1)),
        ((x // 7 + y // 5) % 2) * 200 + rng.integers(0, 40, (height, width)),
    ]
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


@settings(max_examples=100, deadline=None, database=None)
@given(
    width=st.integers(1, 600),
    height=st.integers(1, 600),
    target_width=st.floats(0.0, 1.0),
    target_height=st.floats(0.0, 1.0),
)
def test_the_size_asked_for_is_the_size_made(
    width: int, height: int, target_width: float, target_height: float
) -> None:
    size = (max(1, round(width * target_width)), max(1, round(height * target_height)))

    assert lanczos(Image.new("RGB", (width, height)), size).size == size


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_it_looks_like_pillows_lanczos(mode: str) -> None:
    picture = textured((1200, 800), mode)

    ours = np.asarray(lanczos(picture, (500, 333)), np.float32)
    pillows = np.asarray(picture.resize((500, 333), Image.Resampling.LANCZOS), np.float32)

    assert np.abs(ours - pillows).mean() < 2.0


def test_colours_and_halves_stay_where_they_are() -> None:
    resized = lanczos(halves((800, 400)), (200, 100))

    assert resized.mode == "RGB"
    assert resized.getpixel((20, 50)) == (255, 0, 0)
    assert resized.getpixel((180, 50)) == (0, 0, 255)


def test_one_hand_over_serves_several_sizes() -> None:
    picture = textured((640, 480))
    resampler = Resampler(picture)

    assert resampler.resized((640, 480)) is picture
    assert [resampler.resized(size).size for size in ((320, 240), (64, 48))] == [
        (320, 240),
        (64, 48),
    ]


def test_a_resized_picture_resizes_again_as_a_fresh_hand_over_would() -> None:
    picture = textured((640, 480))
    first = Resampler(picture).resampled((320, 240))

    again = first.resized((100, 75))

    assert first.resampled((320, 240)) is first
    assert again.tobytes() == Resampler(first.image.copy()).resized((100, 75)).tobytes()


def test_a_picture_at_the_size_asked_for_is_not_copied() -> None:
    picture = textured((64, 48))

    assert lanczos(picture, (64, 48)) is picture


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16"])
def test_other_modes_are_refused(mode: str) -> None:
    with pytest.raises(ValueError):
        Resampler(Image.new(mode, (8, 8)))
    with pytest.raises(ValueError):
        lanczos(Image.new(mode, (8, 8)), (8, 8))


def test_an_empty_size_is_refused() -> None:
    with pytest.raises(ValueError):
        lanczos(Image.new("RGB", (8, 8)), (0, 4))
