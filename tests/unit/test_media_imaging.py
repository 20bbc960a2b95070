"""Tests for the helpers backend.media.imaging gained for the derivative pipeline."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from backend.media.derivatives import make_derivatives
from backend.media.imaging import (
    apply_orientation,
    exif_orientation,
    to_srgb,
    to_working_mode,
)
from backend.media.validate import inspect_image
from tests.unit.test_media_samples import encode, exif_with_gps, halves, srgb_icc


@pytest.mark.parametrize(
    ("image", "mode"),
    [
        (Image.new("I;16", (4, 4), 40_000), "L"),
        (Image.new("1", (4, 4), 1), "L"),
        (Image.new("PA", (4, 4)), "RGBA"),
        (Image.new("P", (4, 4)), "RGB"),
        (Image.new("YCbCr", (4, 4)), "RGB"),
        (Image.new("CMYK", (4, 4)), "CMYK"),
        (Image.new("LA", (4, 4)), "LA"),
    ],
)
def test_working_modes(image: Image.Image, mode: str) -> None:
    assert to_working_mode(image).mode == mode


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    assert to_working_mode(Image.new("I;16", (2, 2), 40_000)).getpixel((0, 0)) == 156


@pytest.mark.parametrize("mode", ["P", "L", "RGB"])
def test_transparency_key_becomes_alpha(mode: str) -> None:
    image = Image.new(mode, (2, 2), 0 if mode != "RGB" else (0, 0, 0))
    image.info["transparency"] = 0 if mode != "RGB" else (0, 0, 0)

    converted = to_working_mode(image)

    assert converted.mode == "RGBA"
    assert converted.getpixel((0, 0))[3] == 0  # type: ignore[index]


def test_to_srgb_applies_and_drops_the_profile() -> None:
    image = Image.new("RGBA", (2, 2), (200, 100, 50, 128))
    image.info["icc_profile"] = srgb_icc()

    converted = to_srgb(image)

    assert converted.mode == "RGBA"
    assert "icc_profile" not in converted.info
    assert converted.getpixel((0, 0)) == (200, 100, 50, 128)


def test_to_srgb_survives_a_broken_or_mismatched_profile() -> None:
    broken = Image.new("RGB", (2, 2), (1, 2, 3))
    broken.info["icc_profile"] = b"garbage"
    mismatched = Image.new("LA", (2, 2), (9, 255))
    mismatched.info["icc_profile"] = srgb_icc()

    for image in (broken, mismatched):
        converted = to_srgb(image)
        assert "icc_profile" not in converted.info
        assert converted.tobytes() == image.tobytes()
        assert "icc_profile" in image.info  # the input is left alone


def test_no_profile_means_no_work() -> None:
    image = Image.new("RGB", (2, 2))
    assert to_srgb(image) is image


def test_derivatives_convert_embedded_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[int, int]]] = []
    original = ImageCms.profileToProfile

    def spy(image: Image.Image, *args: object, **kwargs: object) -> Image.Image | None:
        calls.append((image.mode, image.size))
        return original(image, *args, **kwargs)  # type: ignore[arg-type]

    data = encode(halves((3000, 2000)), "JPEG", icc_profile=srgb_icc())
    info = inspect_image(data)
    monkeypatch.setattr(ImageCms, "profileToProfile", spy)

    result = make_derivatives(data, info)

    # On the preview alone (the model picture is made from it, the thumbnail from the model
    # picture), never on the far larger working picture.
    assert calls == [("RGB", result.preview_size)]
    assert result.preview_size == (1280, 853) and result.model_image.size == (672, 448)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_exif_orientation_reading() -> None:
    rotated = Image.open(io.BytesIO(encode(halves((8, 8)), "JPEG", exif=exif_with_gps(6))))
    plain = Image.new("RGB", (2, 2))
    invalid = Image.Exif()
    invalid[0x0112] = 9
    out_of_range = Image.new("RGB", (2, 2))
    out_of_range.info["exif"] = invalid.tobytes()
    garbage = Image.new("RGB", (2, 2))
    garbage.info["exif"] = b"Exif\x00\x00MM\x00*\xff\xff\xff\xff"

    assert exif_orientation(rotated) == 6
    assert exif_orientation(plain) == 1
    assert exif_orientation(out_of_range) == 1
    assert exif_orientation(garbage) == 1


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (4, 2)), (3, (4, 2)), (6, (2, 4)), (8, (2, 4))]
)
def test_apply_orientation(orientation: int, size: tuple[int, int]) -> None:
    image = Image.new("RGB", (4, 2))
    assert apply_orientation(image, orientation).size == size
