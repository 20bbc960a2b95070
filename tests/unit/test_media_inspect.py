"""Tests for backend.media.validate: what inspect_image accepts and how it refuses the rest."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from backend.media.decoding import harden_pillow
from backend.media.errors import MediaError, TooLarge, UnsupportedMedia
from backend.media.validate import ImageInfo, MediaLimits, inspect_image
from tests.unit.test_media_samples import (
    encode,
    exif_with_gps,
    halves,
    jpeg,
    png,
    png_bomb,
    png_header_only,
    webp,
)

# --- accepted pictures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "mime"),
    [
        (jpeg((64, 48)), "JPEG", "image/jpeg"),
        (png((64, 48)), "PNG", "image/png"),
        (webp((64, 48)), "WEBP", "image/webp"),
        (webp((64, 48), lossless=True), "WEBP", "image/webp"),
    ],
)
def test_accepts_each_format(data: bytes, fmt: str, mime: str) -> None:
    info = inspect_image(data)

    assert info == ImageInfo(
        format=fmt, width=64, height=48, mime=mime, orientation=1, byte_size=len(data)
    )


def test_reads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "upload.done"
    path.write_bytes(png((30, 20)))

    info = inspect_image(path)

    assert (info.format, info.width, info.height) == ("PNG", 30, 20)


def test_reports_upright_size_and_orientation() -> None:
    data = jpeg((40, 20), exif=exif_with_gps(orientation=6))

    info = inspect_image(data)

    assert (info.width, info.height, info.orientation) == (20, 40, 6)
    assert info.stored_size == (40, 20)


def test_accepts_a_camera_mpo_as_jpeg() -> None:
    frames = [halves((40, 30)), halves((40, 30), "green", "white")]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])

    info = inspect_image(data)

    assert (info.format, info.mime, info.width, info.height) == ("JPEG", "image/jpeg", 40, 30)


# --- not a picture we accept -----------------------------------------------------------------


def test_zero_bytes_is_empty() -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(b"")
    assert caught.value.reason == "empty"
    assert str(caught.value) == "The file is empty"


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    with pytest.raises(UnsupportedMedia, match="empty"):
        inspect_image(path)


def test_random_bytes_are_refused() -> None:
    data = random.Random(7).randbytes(4096)
    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(data)
    assert caught.value.reason == "not_accepted"
    assert str(caught.value) == (
        "The file is not a picture we accept: only JPEG, PNG and WebP"
    )


def test_text_file_is_refused() -> None:
    with pytest.raises(UnsupportedMedia, match="not a picture we accept"):
        inspect_image(b"BM is a text file, not a bitmap.\n" * 20)


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_other_picture_formats_are_refused_by_name(fmt: str, name: str) -> None:
    data = encode(halves((16, 16)), fmt)
    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(data)
    assert caught.value.reason == "not_accepted"
    assert str(caught.value) == f"The file is a {name} picture; we accept only JPEG, PNG and WebP"


def test_format_outside_the_limits_is_refused() -> None:
    with pytest.raises(UnsupportedMedia, match="we accept only PNG$"):
        inspect_image(jpeg(), MediaLimits(formats=frozenset({"PNG"})))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n" + jpeg()[2:], id="png-magic-jpeg-body"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, id="png-magic-zeros"),
        pytest.param(b"\xff\xd8\xff" + png()[3:], id="jpeg-magic-png-body"),
        pytest.param(b"RIFF\x00\x10\x00\x00WEBP" + jpeg(), id="webp-magic-jpeg-body"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + encode(halves((8, 8)), "GIF"), id="png-magic-gif"),
    ],
)
def test_content_not_matching_its_magic_is_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(data)
    assert caught.value.reason in {"mismatch", "damaged"}


def test_mismatch_message_names_the_claimed_format() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3

    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(data)

    assert str(caught.value) == "The file says it is PNG but is not"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg((200, 150), quality=95), id="jpeg"),
        pytest.param(png((200, 150)), id="png"),
        pytest.param(webp((200, 150)), id="webp"),
    ],
)
def test_truncated_pictures_are_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(data[: len(data) // 2])
    assert caught.value.reason == "damaged"
    assert str(caught.value) == "The picture is truncated or damaged"


def test_truncation_is_caught_even_if_someone_enables_pillows_lenient_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = jpeg((200, 150), quality=95)

    with pytest.raises(UnsupportedMedia, match="truncated"):
        inspect_image(data[: len(data) // 2])


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_pictures_are_refused(fmt: str) -> None:
    frames = [halves((20, 20)), halves((20, 20), "green", "white")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])

    with pytest.raises(UnsupportedMedia) as caught:
        inspect_image(data)

    assert caught.value.reason == "animated"


# --- too large -------------------------------------------------------------------------------


def test_over_max_bytes_is_too_large() -> None:
    data = png((64, 48))
    with pytest.raises(TooLarge) as caught:
        inspect_image(data, MediaLimits(max_bytes=len(data) - 1))
    assert caught.value.reason == "bytes"


def test_byte_size_is_checked_before_the_content(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"not a picture" * 100)

    with pytest.raises(TooLarge, match="the limit is 1 KB"):
        inspect_image(path, MediaLimits(max_bytes=1024))


def test_over_max_pixels_is_too_large() -> None:
    with pytest.raises(TooLarge) as caught:
        inspect_image(png((100, 100)), MediaLimits(max_pixels=9_999))
    assert caught.value.reason == "pixels"
    assert str(caught.value) == (
        "The picture is 100 x 100 pixels (10,000 pixels); the limit is 9,999 pixels"
    )


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    # The pixel data is missing: decoding would report "damaged", not "too large".
    data = png_header_only(3_000, 2_000)

    with pytest.raises(TooLarge) as caught:
        inspect_image(data, MediaLimits(max_pixels=5_000_000))

    assert str(caught.value) == (
        "The picture is 3,000 x 2,000 pixels (6 megapixels); the limit is 5 megapixels"
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(8_000, 8_000, id="in-pillows-warning-band"),
        pytest.param(20_000, 20_000, id="past-pillows-error-threshold"),
    ],
)
def test_declared_bomb_is_too_large_with_default_limits(width: int, height: int) -> None:
    with pytest.raises(TooLarge):
        inspect_image(png_header_only(width, height))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_real_decompression_bomb_is_too_large() -> None:
    data = png_bomb(10_000, 10_000)
    assert len(data) < 200_000

    with pytest.raises(TooLarge):
        inspect_image(data)


def test_a_higher_limit_raises_pillows_own_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)

    info = inspect_image(png((100, 100)), MediaLimits(max_pixels=20_000))

    assert info.pixels == 10_000
    assert Image.MAX_IMAGE_PIXELS == 20_000


def test_pillows_guard_is_translated_into_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulates another part of the process lowering the guard below our limit.
    monkeypatch.setattr("backend.media.decoding._allow_pixels", lambda max_pixels: None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)

    with pytest.raises(TooLarge) as caught:
        inspect_image(png((100, 100)), MediaLimits(max_pixels=20_000))

    assert "too large to open safely" in str(caught.value)


def test_pillows_bomb_warning_is_translated_into_too_large() -> None:
    # pytest resets warning filters around each test, so install ours again for this one.
    with warnings.catch_warnings():
        harden_pillow()
        with pytest.raises(TooLarge, match="too large to open safely"):
            inspect_image(png_header_only(8_000, 8_000))


# --- messages and limits ---------------------------------------------------------------------


def test_too_large_message_reads_well() -> None:
    error = TooLarge.pixels(12_000, 9_000, 50_000_000)

    assert str(error) == (
        "The picture is 12,000 x 9,000 pixels (108 megapixels); the limit is 50 megapixels"
    )
    assert error.code == "too_large"
    assert UnsupportedMedia.empty().code == "unsupported_media"
    assert str(TooLarge.file_size(64 * 1024 * 1024, 50 * 1024 * 1024)) == (
        "The file is 64 MB; the limit is 50 MB"
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"max_bytes": 0}, {"max_pixels": 0}, {"formats": frozenset()}, {"formats": {"GIF"}}],
)
def test_limits_reject_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MediaLimits(**kwargs)  # type: ignore[arg-type]


# --- fuzzing ---------------------------------------------------------------------------------

_SEEDS = [jpeg((24, 16)), png((24, 16)), webp((24, 16)), webp((24, 16), lossless=True)]


def _only_media_errors(data: bytes) -> None:
    try:
        inspect_image(data, MediaLimits(max_pixels=1_000_000))
    except MediaError:
        pass


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_ever_raise_media_errors(data: bytes) -> None:
    _only_media_errors(data)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.sampled_from(_SEEDS),
    cut=st.integers(min_value=0, max_value=2048),
    flips=st.lists(st.tuples(st.integers(0, 2047), st.integers(0, 255)), max_size=8),
)
def test_corrupted_pictures_only_ever_raise_media_errors(
    seed: bytes, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(seed[: max(cut, 1)] if cut < len(seed) else seed)
    for position, value in flips:
        data[position % len(data)] = value
    _only_media_errors(bytes(data))


def test_magic_prefixed_garbage_only_raises_media_errors() -> None:
    rng = random.Random(11)
    prefixes = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x01\x00\x00WEBPVP8 "]
    for prefix in prefixes:
        for _ in range(50):
            _only_media_errors(prefix + rng.randbytes(rng.randrange(0, 600)))

