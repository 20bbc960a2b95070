"""Provides the upload pipeline as it was before issue 19, to compare the current one against.

The equivalence test and the upload benchmark both need the old outputs and the old cost side by
side with the new in one run, so the old pipeline is kept here verbatim in what it does:
validation with a full decode, a second decode for the derivatives (reduced by ``draft`` and an
integer box reduction), orientation, colour conversion and flattening on the working picture,
three Lanczos resizes from it in Pillow, and WebP at method 4.

It uses the media helpers that did not change (validation, sanitising, opening, orientation,
colour), so only the derivative step differs from the server's.

``python -m tests.support.reference_pipeline ARGS...`` runs ``pixmart-server ARGS...`` with this
pipeline in place of the current one, for the benchmark's "old" server.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from backend.media.decoding import open_image, source_stream
from backend.media.derivatives import (
    PREVIEW_LONG_SIDE,
    PREVIEW_QUALITY,
    THUMBNAIL_LONG_SIDE,
    THUMBNAIL_QUALITY,
    Derivatives,
    fit_for_model,
    fit_longest_side,
)
from backend.media.imaging import (
    SWAPPING_ORIENTATIONS,
    apply_orientation,
    flatten_onto_white,
    needs_working_conversion,
    to_srgb,
    to_working_mode,
)
from backend.media.sanitize import sanitized_original
from backend.media.validate import ImageInfo, MediaLimits, inspect_image

_REDUCING_GAP: Final = 2
_BAND_PIXELS: Final = 1 << 20
#: The WebP effort the old pipeline used.
OLD_WEBP_METHOD: Final = 4

Size = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ReferenceOutputs:
    """The old pipeline's derivatives, with the pixels it encoded (before the lossy step).

    Attributes:
        derivatives: What the old server stored and served.
        thumbnail_pixels: The thumbnail before WebP encoding.
        preview_pixels: The preview before WebP encoding.
    """

    derivatives: Derivatives
    thumbnail_pixels: Image.Image
    preview_pixels: Image.Image


@dataclass(frozen=True, slots=True)
class ReferencePrepared:
    """What the old ``prepare_picture`` returned (the same fields as today's)."""

    info: ImageInfo
    clean: bytes
    derivatives: Derivatives


def prepare_picture(path: Path, limits: MediaLimits) -> ReferencePrepared:
    """Validate, sanitise and derive as the old server did: three reads, two decodes."""
    info = inspect_image(path, limits)
    clean = sanitized_original(path.read_bytes(), info)
    return ReferencePrepared(info=info, clean=clean, derivatives=make_derivatives(path, info))


def make_derivatives(source: bytes | Path, info: ImageInfo) -> Derivatives:
    """The old ``backend.media.derivatives.make_derivatives``."""
    return reference_outputs(source, info).derivatives


def reference_outputs(source: bytes | Path, info: ImageInfo) -> ReferenceOutputs:
    """The old derivatives of an accepted picture, with the pixels before encoding."""
    width, height = info.width, info.height
    thumb_size = fit_longest_side((width, height), THUMBNAIL_LONG_SIDE)
    preview_size = fit_longest_side((width, height), PREVIEW_LONG_SIDE)
    model_size = fit_for_model((width, height))
    working = _decode_working(source, info, _largest(preview_size, model_size))
    thumbnail = _resized(working, thumb_size)
    preview = _resized(working, preview_size)
    derivatives = Derivatives(
        thumbnail=_encode_webp(thumbnail, THUMBNAIL_QUALITY),
        thumb_size=thumb_size,
        preview=_encode_webp(preview, PREVIEW_QUALITY),
        preview_size=preview_size,
        model_image=_resized(working, model_size),
    )
    return ReferenceOutputs(derivatives, thumbnail, preview)


def _largest(*sizes: Size) -> Size:
    return max(size[0] for size in sizes), max(size[1] for size in sizes)


def _decode_working(source: bytes | Path, info: ImageInfo, needed: Size) -> Image.Image:
    transposed = info.orientation in SWAPPING_ORIENTATIONS
    stored_needed = (needed[1], needed[0]) if transposed else needed
    with (
        source_stream(source) as (stream, _),
        open_image(stream, info.format, info.pixels) as image,
    ):
        stored_size = image.size
        if stored_size == info.stored_size:
            image.draft("RGB", stored_needed)
            image.load()
    if stored_size != info.stored_size:
        raise ValueError(f"info describes a {info.stored_size} picture, not {stored_size}")
    factor = min(
        image.width // (stored_needed[0] * _REDUCING_GAP),
        image.height // (stored_needed[1] * _REDUCING_GAP),
    )
    working = _working_reduced(image, factor)
    working = flatten_onto_white(to_srgb(apply_orientation(working, info.orientation)))
    working.info = {}
    return working


def _working_reduced(image: Image.Image, factor: int) -> Image.Image:
    if factor <= 1:
        return to_working_mode(image)
    if not needs_working_conversion(image):
        return image.reduce(factor)
    width, height = image.size
    rows = factor * max(1, _BAND_PIXELS // (width * factor))
    bands = [
        to_working_mode(image.crop((0, top, width, min(height, top + rows)))).reduce(factor)
        for top in range(0, height, rows)
    ]
    reduced = Image.new(bands[0].mode, (bands[0].width, sum(band.height for band in bands)))
    top = 0
    for band in bands:
        reduced.paste(band, (0, top))
        top += band.height
    reduced.info = dict(bands[0].info)
    return reduced


def _resized(image: Image.Image, size: Size) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode_webp(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="WEBP",
        quality=quality,
        method=OLD_WEBP_METHOD,
        exif=b"",
        icc_profile=b"",
        xmp=b"",
    )
    return buffer.getvalue()


def main() -> int:
    """Run ``pixmart-server`` with the old pipeline in place of the current one."""
    import backend.catalogue.processing as processing
    from backend.cli import main as server_main

    processing.prepare_picture = prepare_picture  # type: ignore[assignment]
    return server_main()


if __name__ == "__main__":
    sys.exit(main())
