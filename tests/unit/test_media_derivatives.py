"""Tests for backend.media.derivatives: sizes, orientation, flattening and metadata removal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, JpegImagePlugin

from backend.media import derivatives
from backend.media.derivatives import (
    MODEL_MAX_LONG_SIDE,
    MODEL_SHORT_SIDE,
    Derivatives,
    decode_for_model,
    fit_for_model,
    fit_longest_side,
    make_derivatives,
)
from backend.media.errors import UnsupportedMedia
from backend.media.resample import Resampler
from backend.media.validate import ImageInfo, inspect_image
from tests.unit.test_media_samples import (
    XMP_PACKET,
    encode,
    exif_with_gps,
    halves,
    jpeg,
    png,
    srgb_icc,
    webp,
    webp_chunks,
)


def derive(data: bytes) -> Derivatives:
    """Validate ``data`` and make its derivatives, as the server does."""
    return make_derivatives(data, inspect_image(data))


def decoded(data: bytes) -> Image.Image:
    """Return ``data`` decoded, checking it is a WebP file."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    image.load()
    return image


def is_close(pixel: object, expected: tuple[int, int, int], slack: int = 24) -> bool:
    """Return whether an RGB pixel is within ``slack`` of ``expected`` (lossy codecs)."""
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= slack for a, b in zip(pixel[:3], expected, strict=True))


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("maker", [jpeg, png, webp])
def test_large_picture_is_scaled_to_thumbnail_and_preview(maker: object) -> None:
    data = maker((3000, 2000))  # type: ignore[operator]

    result = derive(data)

    assert result.thumb_size == (256, 171)
    assert result.preview_size == (1280, 853)
    assert decoded(result.thumbnail).size == result.thumb_size
    assert decoded(result.preview).size == result.preview_size
    assert result.model_image.mode == "RGB"
    assert min(result.model_image.size) == MODEL_SHORT_SIDE


def test_small_picture_is_not_upscaled() -> None:
    result = derive(png((100, 50)))

    assert result.thumb_size == (100, 50)
    assert result.preview_size == (100, 50)
    assert result.model_image.size == (100, 50)
    assert decoded(result.preview).size == (100, 50)


def test_medium_picture_gets_a_thumbnail_but_a_full_size_preview() -> None:
    result = derive(jpeg((1000, 800)))

    assert result.thumb_size == (256, 205)
    assert result.preview_size == (1000, 800)


def test_panorama_model_picture_is_capped() -> None:
    result = derive(jpeg((8000, 800)))

    assert result.model_image.size == fit_for_model((8000, 800))
    assert max(result.model_image.size) == MODEL_MAX_LONG_SIDE


def test_fit_helpers() -> None:
    assert fit_longest_side((4000, 3000), 1280) == (1280, 960)
    assert fit_longest_side((3000, 4000), 256) == (192, 256)
    assert fit_longest_side((10, 10_000), 256) == (1, 256)
    assert fit_longest_side((200, 100), 256) == (200, 100)
    assert fit_for_model((4000, 3000)) == (597, 448)
    assert fit_for_model((300, 200)) == (300, 200)


def test_large_jpeg_is_reduced_while_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    scales: list[tuple[int, int]] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(
        self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        result = original_draft(self, mode, size)
        scales.append(self.size)
        return result

    data = jpeg((6000, 4000))
    info = inspect_image(data)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)

    result = make_derivatives(data, info)

    # libjpeg decoded at a quarter of the size: the largest scale still covering the preview.
    assert scales == [(1500, 1000)]
    assert result.preview_size == (1280, 853)


# --- orientation, transparency, colour -------------------------------------------------------


def test_exif_orientation_is_applied() -> None:
    # Stored landscape, left half red; orientation 6 means "rotate 90 degrees clockwise".
    data = jpeg((400, 200), exif=exif_with_gps(orientation=6), quality=95)

    result = derive(data)

    assert result.thumb_size == (128, 256)
    assert result.preview_size == (200, 400)
    assert result.model_image.size == (200, 400)
    thumbnail = decoded(result.thumbnail).convert("RGB")
    assert thumbnail.size == (128, 256)
    assert is_close(thumbnail.getpixel((64, 20)), (255, 0, 0))  # red is now on top
    assert is_close(thumbnail.getpixel((64, 236)), (0, 0, 255))
    assert is_close(result.model_image.getpixel((100, 10)), (255, 0, 0))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_transparency_is_composited_onto_white(fmt: str) -> None:
    cutout = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    cutout.paste((20, 120, 20, 255), (200, 100, 400, 300))
    data = encode(cutout, fmt, **({"lossless": True} if fmt == "WEBP" else {}))

    result = derive(data)

    for image in (decoded(result.thumbnail), decoded(result.preview), result.model_image):
        assert image.mode == "RGB"
        assert is_close(image.getpixel((0, 0)), (255, 255, 255), slack=6)
        centre = (image.width // 2, image.height // 2)
        assert is_close(image.getpixel(centre), (20, 120, 20))


def test_palette_transparency_is_composited_onto_white() -> None:
    cutout = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    cutout.paste((200, 0, 0, 255), (100, 100, 200, 200))
    data = encode(cutout.convert("P"), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "P"

    result = derive(data)

    assert is_close(decoded(result.thumbnail).getpixel((0, 0)), (255, 255, 255), slack=6)


def test_sixteen_bit_greyscale_keeps_its_tone() -> None:
    data = encode(Image.new("I;16", (300, 200), 32_768), "PNG")

    result = derive(data)

    assert is_close(result.model_image.getpixel((10, 10)), (128, 128, 128), slack=2)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (300, 200), (0, 255, 255, 0)), "JPEG")

    result = derive(data)

    assert is_close(result.model_image.getpixel((10, 10)), (255, 0, 0), slack=30)


def test_broken_icc_profile_is_ignored() -> None:
    data = jpeg((300, 200), icc_profile=b"not an icc profile" * 10)

    result = derive(data)

    assert is_close(result.model_image.getpixel((10, 10)), (255, 0, 0))


# --- no metadata in the outputs --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_outputs_carry_no_metadata(fmt: str) -> None:
    extra: dict[str, object] = {"exif": exif_with_gps(orientation=3), "icc_profile": srgb_icc()}
    if fmt != "JPEG":
        extra["xmp"] = XMP_PACKET
    data = encode(halves((2000, 1500)), fmt, **extra)
    assert Image.open(io.BytesIO(data)).getexif()

    result = derive(data)

    for output in (result.thumbnail, result.preview):
        # Only the bare image-data chunk: no VP8X container, so no EXIF, ICCP or XMP chunks.
        assert [kind for kind, _ in webp_chunks(output)] in ([b"VP8 "], [b"VP8L"])
        image = decoded(output)
        assert not image.getexif()
        assert not {"exif", "icc_profile", "xmp"} & image.info.keys()
        assert b"SecretCam" not in output and b"secret-xmp" not in output
    assert result.model_image.info == {}


# --- the model picture and misuse ------------------------------------------------------------


def test_decode_for_model_matches_make_derivatives(tmp_path: Path) -> None:
    data = jpeg((2400, 1600), exif=exif_with_gps(orientation=8))
    info = inspect_image(data)
    path = tmp_path / "blob"
    path.write_bytes(data)

    alone = decode_for_model(path, info)

    assert alone.mode == "RGB"
    assert alone.size == make_derivatives(data, info).model_image.size == (448, 672)


def test_info_of_another_picture_is_refused() -> None:
    info = inspect_image(png((64, 48)))
    other = png((640, 480))

    with pytest.raises(ValueError):
        make_derivatives(other, info)


def test_data_not_in_the_validated_format_is_refused() -> None:
    wrong = ImageInfo(format="JPEG", width=64, height=48, mime="image/jpeg")

    with pytest.raises(UnsupportedMedia):
        make_derivatives(png((64, 48)), wrong)


def test_decode_for_model_reduces_for_the_model_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    handed: list[tuple[int, int]] = []

    def spy(image: Image.Image) -> Resampler:
        handed.append(image.size)
        return Resampler(image)

    data = png((4000, 4000))
    info = inspect_image(data)
    monkeypatch.setattr(derivatives, "Resampler", spy)

    decode_for_model(data, info)

    # Box-reduced by 4 (still twice the 448-pixel model picture), not only as far as the
    # 1280-pixel preview would allow: what a search decode holds stays what its budget counts.
    assert handed == [(1000, 1000)]
