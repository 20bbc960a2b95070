"""Tests for the upload pipeline's single decode: validation whose decode the derivatives reuse.

``inspect_and_decode`` must refuse everything ``inspect_image`` refuses, for the same reasons,
including when it decodes a JPEG at a reduced scale; and the whole per-upload step
(``prepare_picture``) must only ever raise media errors on hostile input.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from backend.catalogue.processing import prepare_picture
from backend.media.derivatives import decode_size, derive, make_derivatives
from backend.media.errors import MediaError, TooLarge, UnsupportedMedia
from backend.media.validate import (
    DEFAULT_LIMITS,
    ImageInfo,
    MediaLimits,
    inspect_and_decode,
    inspect_image,
)
from tests.unit.test_media_samples import (
    encode,
    exif_with_gps,
    halves,
    jpeg,
    png,
    png_bomb,
    png_chunk,
    png_header_only,
    webp,
)


def decode_once(data: bytes, limits: MediaLimits = DEFAULT_LIMITS) -> tuple[ImageInfo, Image.Image]:
    """Validate and decode ``data`` as the upload pipeline does."""
    return inspect_and_decode(data, limits, decode_size)


def png_with_late_exif(orientation: int) -> bytes:
    """A PNG whose eXIf chunk (with ``orientation``) follows its pixel data."""
    data = png((60, 40))
    exif = exif_with_gps(orientation).tobytes()
    end = data.rindex(b"IEND") - 4
    return data[:end] + png_chunk(b"eXIf", exif) + data[end:]


# --- what it learns matches inspect_image ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg((3000, 2000)), id="large-jpeg"),
        pytest.param(jpeg((400, 200), exif=exif_with_gps(orientation=6)), id="rotated-jpeg"),
        pytest.param(png((640, 480)), id="png"),
        pytest.param(png_with_late_exif(8), id="png-late-exif"),
        pytest.param(webp((640, 480), exif=exif_with_gps(orientation=3)), id="webp"),
    ],
)
def test_info_is_what_inspect_image_says(data: bytes) -> None:
    info, decoded = inspect_and_decode(data, MediaLimits(), decode_size)

    assert info == inspect_image(data)
    assert isinstance(decoded, Image.Image)


def test_large_jpeg_is_decoded_reduced_but_covers_every_output() -> None:
    data = jpeg((6000, 4000))

    info, decoded = inspect_and_decode(data, MediaLimits(), decode_size)

    assert (info.width, info.height) == (6000, 4000)
    assert decoded.size == (1500, 1000)  # libjpeg at 1/4: still covers the 1280-px preview


def test_rotated_jpeg_is_reduced_on_its_stored_sides() -> None:
    # Stored 4000 x 6000 and turned by orientation 6: upright it is 6000 wide.
    data = jpeg((4000, 6000), exif=exif_with_gps(orientation=6))

    info, decoded = inspect_and_decode(data, MediaLimits(), decode_size)

    assert (info.width, info.height, info.orientation) == (6000, 4000, 6)
    assert decoded.size == (1000, 1500)


def test_derivatives_from_the_single_decode_match_a_separate_decode() -> None:
    data = jpeg((3000, 2000), exif=exif_with_gps(orientation=8), quality=95)
    info, decoded = inspect_and_decode(data, MediaLimits(), decode_size)

    once = derive(decoded, info)
    twice = make_derivatives(data, info)

    assert once.preview == twice.preview and once.thumbnail == twice.thumbnail
    assert once.model_image.tobytes() == twice.model_image.tobytes()


# --- refusals are today's --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg((200, 150), quality=95), id="jpeg"),
        pytest.param(jpeg((4000, 3000), quality=95), id="jpeg-decoded-at-a-quarter"),
        pytest.param(png((200, 150)), id="png"),
        pytest.param(webp((200, 150)), id="webp"),
    ],
)
def test_truncated_pictures_are_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        decode_once(data[: len(data) * 3 // 4])
    assert caught.value.reason == "damaged"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"hello, this is text" * 10, "not_accepted", id="text"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "mismatch", id="png-magic-only"),
    ],
)
def test_non_pictures_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        decode_once(data)
    assert caught.value.reason == reason


def test_animated_pictures_are_refused() -> None:
    frames = [halves((20, 20)), halves((20, 20), "green", "white")]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:])

    with pytest.raises(UnsupportedMedia) as caught:
        decode_once(data)
    assert caught.value.reason == "animated"


def test_limits_are_checked_before_decoding() -> None:
    with pytest.raises(TooLarge) as caught:
        decode_once(png((100, 100)), MediaLimits(max_bytes=10))
    assert caught.value.reason == "bytes"
    with pytest.raises(TooLarge) as caught:
        decode_once(png_header_only(3_000, 2_000), MediaLimits(max_pixels=5_000_000))
    assert caught.value.reason == "pixels"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_real_decompression_bomb_is_too_large() -> None:
    with pytest.raises(TooLarge):
        decode_once(png_bomb(10_000, 10_000))


# --- the whole per-upload step on hostile input ----------------------------------------------

_SEEDS = [
    jpeg((96, 64)),
    jpeg((96, 64), exif=exif_with_gps(orientation=6)),
    png((96, 64)),
    encode(halves((96, 64)).convert("RGBA"), "PNG"),
    webp((96, 64)),
    webp((96, 64), lossless=True),
]


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.sampled_from(_SEEDS),
    cut=st.integers(min_value=1, max_value=4096),
    flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
)
def test_corrupted_uploads_only_ever_raise_media_errors(
    tmp_path: Path, seed: bytes, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(seed[:cut])
    for position, value in flips:
        data[position % len(data)] = value
    path = tmp_path / "upload"
    path.write_bytes(bytes(data))
    try:
        prepared = prepare_picture(path, MediaLimits(max_pixels=1_000_000))
    except MediaError:
        return
    # Accepted: its outputs are real pictures of the sizes it says.
    assert Image.open(io.BytesIO(prepared.derivatives.preview)).size == (
        prepared.derivatives.preview_size
    )
    assert prepared.derivatives.model_image.mode == "RGB"
