"""Provides the downscaled pictures made from an accepted original, from a single decode.

From one decode of the original we make:

* a thumbnail, longest side :data:`THUMBNAIL_LONG_SIDE` px, WebP;
* a preview, longest side :data:`PREVIEW_LONG_SIDE` px, WebP at quality :data:`PREVIEW_QUALITY`
  (WebP rather than JPEG: about a third smaller at the same quality, and the terminal client
  decodes both through Pillow anyway);
* the picture for the vision pipeline: RGB, at most :data:`MODEL_SHORT_SIDE` px on the shorter
  side (the embedder resizes to 224 itself; 448 leaves it room to crop).

Small pictures are never upscaled. All three are upright (EXIF orientation applied), converted
to sRGB from any embedded ICC profile, with transparency composited onto white, and the two
encoded files carry no metadata at all (no EXIF, GPS, ICC, XMP or comments).

Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale straight out of libjpeg (``draft``), and
large PNG/WebP pictures are box-reduced by an integer factor before any other work, so a
50-megapixel photo costs a fraction of a full-size pipeline. A picture that must change mode
first (a palette with transparency becomes RGBA, 16-bit grey becomes 8-bit) is converted and
reduced a band of rows at a time, so no full-size converted copy is ever held next to it:
:func:`model_decode_pixels` can then say what a decode holds at most.

Where the time goes (issue 19): the preview is resized from the working picture by libvips
(:mod:`backend.media.resample`), the model picture from the preview whenever the preview covers
it (a 1280-pixel preview has half the pixels of a 3-megapixel working picture), the thumbnail
from the model picture, and orientation and colour conversion are applied to the small outputs
rather than to the working picture. Only pictures with transparency (and CMYK) are flattened and
converted before resizing: compositing must see the unmixed alpha. Both WebP files are encoded
at method 2, the least effort whose files stay within a few per cent of method 4's sizes (see
:data:`PREVIEW_WEBP_METHOD`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from backend.media.decoding import open_image, source_stream
from backend.media.imaging import (
    SWAPPING_ORIENTATIONS,
    apply_orientation,
    flatten_onto_white,
    needs_working_conversion,
    to_srgb,
    to_working_mode,
)
from backend.media.resample import Resampler
from backend.media.validate import ImageInfo

THUMBNAIL_LONG_SIDE: Final = 256
PREVIEW_LONG_SIDE: Final = 1280
MODEL_SHORT_SIDE: Final = 448
#: Caps the vision picture of a very long panorama, which the embedder squeezes to 224 anyway.
MODEL_MAX_LONG_SIDE: Final = 4 * MODEL_SHORT_SIDE
THUMBNAIL_QUALITY: Final = 80
PREVIEW_QUALITY: Final = 85
#: libwebp's effort (0-6) for the preview. Method 3 and up add rate-distortion passes: on the
#: demo photos and the media test set method 2 took under half of method 4's time (24 against
#: 52 ms for a 1280-pixel preview) for files 2-7% larger with at most 0.005 less SSIM against
#: the unencoded picture. Methods 0 and 1 save another 5-9 ms but made files up to 61% and 36%
#: larger, past the 15% the outputs may change by.
PREVIEW_WEBP_METHOD: Final = 2
#: libwebp's effort for the thumbnail, chosen as for the preview: half of method 4's time
#: (2.1 against 4.2 ms) for files at most 9% larger, at most 0.006 less SSIM against the
#: unencoded picture; methods 0 and 1 made files up to 49% larger.
THUMBNAIL_WEBP_METHOD: Final = 2
#: The MIME type of the thumbnail and the preview.
DERIVATIVE_MIME: Final = "image/webp"

#: The working picture is kept at least this many times larger than every output, so the final
#: Lanczos resize still has detail to work with after the cheap integer reductions.
_REDUCING_GAP: Final = 2
#: Pixels of one band when a picture is converted and reduced band by band (4 MB as RGBA).
_BAND_PIXELS: Final = 1 << 20
#: libjpeg's reduced decoding scales, largest first.
_JPEG_SCALES: Final = (8, 4, 2, 1)

Size = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Derivatives:
    """The pictures made from one original.

    Attributes:
        thumbnail: WebP file, longest side at most :data:`THUMBNAIL_LONG_SIDE`.
        thumb_size: ``(width, height)`` of the thumbnail.
        preview: WebP file, longest side at most :data:`PREVIEW_LONG_SIDE`.
        preview_size: ``(width, height)`` of the preview.
        model_image: Upright sRGB RGB picture for the embedder, shorter side at most
            :data:`MODEL_SHORT_SIDE`; it has no metadata in ``info``.
    """

    thumbnail: bytes
    thumb_size: Size
    preview: bytes
    preview_size: Size
    model_image: Image.Image


def make_derivatives(source: bytes | Path, info: ImageInfo) -> Derivatives:
    """Decode an accepted original once and make the thumbnail, preview and model picture.

    Runs synchronously and is CPU-bound: call it from a worker thread. The upload pipeline,
    which decodes while validating, calls :func:`derive` on that decode instead.

    Args:
        source: The original's bytes, or the path of its stored blob.
        info: What :func:`~backend.media.validate.inspect_image` returned for ``source``. Only
            validated pictures may be decoded here, and the info proves it.

    Returns:
        The encoded thumbnail and preview with their sizes, and the model picture.

    Raises:
        ValueError: ``info`` does not describe ``source``.
        UnsupportedMedia: The picture cannot be decoded (it was validated, so only if the file
            changed since).
    """
    return derive(_decode(source, info, decode_size(info)), info)


def derive(decoded: Image.Image, info: ImageInfo) -> Derivatives:
    """Make the thumbnail, preview and model picture from a decode of the original.

    Args:
        decoded: The original decoded as stored (not yet upright), whole or reduced by
            ``draft`` to at least :func:`decode_size`.
        info: What validation learned about the original.

    Returns:
        The encoded thumbnail and preview with their sizes, and the model picture.
    """
    thumb_size, preview_size, model_size = _output_sizes(info)
    working = _Working(decoded, info, _largest(preview_size, model_size))
    preview = working.output(preview_size)
    if _covers(preview_size, model_size):
        # The preview holds every detail the smaller model picture can show, in half the
        # pixels of a 3-megapixel working picture or less; it is upright and sRGB already.
        model = preview.resampled(model_size)
    else:
        # A panorama's model picture (up to MODEL_MAX_LONG_SIDE long) is longer than its preview.
        model = working.output(model_size)
    del working  # its packed copy of the pixels: freed before the encoders run
    # The model picture always covers the thumbnail (its scale is never the smaller one).
    thumbnail = model.resampled(thumb_size)
    return Derivatives(
        thumbnail=_encode_webp(thumbnail.image, THUMBNAIL_QUALITY, THUMBNAIL_WEBP_METHOD),
        thumb_size=thumb_size,
        preview=_encode_webp(preview.image, PREVIEW_QUALITY, PREVIEW_WEBP_METHOD),
        preview_size=preview_size,
        model_image=model.image,
    )


def decode_for_model(source: bytes | Path, info: ImageInfo) -> Image.Image:
    """Return only the vision pipeline's picture (e.g. to re-embed after a model change).

    Args:
        source: The original's bytes, or the path of its stored blob.
        info: What :func:`~backend.media.validate.inspect_image` returned for ``source``.

    Returns:
        The same picture :func:`make_derivatives` puts in ``model_image``.

    Raises:
        ValueError: ``info`` does not describe ``source``.
        UnsupportedMedia: The picture cannot be decoded.
    """
    model_size = fit_for_model((info.width, info.height))
    (model,) = _Working(_decode(source, info, model_size), info, model_size).outputs(model_size)
    return model


def decode_size(info: ImageInfo) -> Size:
    """Return the size a decode must cover to make every output, as people see the picture."""
    _, preview_size, model_size = _output_sizes(info)
    return _largest(preview_size, model_size)


def model_decode_pixels(info: ImageInfo) -> int:
    """Return the most pixels :func:`decode_for_model` holds at once for ``info``'s picture.

    A JPEG is decoded straight at the largest of 1/8, 1/4, 1/2 and 1/1 scale that still covers
    the model's size; PNG and WebP have no reduced decoding and are held whole until reduced.
    Reduced copies are at most a quarter of that and are not counted, nor is the packed copy
    libvips resizes from (3 bytes a pixel of the working picture: of a reduced copy, or of a
    decode small enough to be used as it is). Pixels are at most 4 bytes each (Pillow keeps RGB
    as RGBX; a mode change happens band by band).
    """
    width, height = info.stored_size
    if info.format != "JPEG":
        return width * height
    needed = fit_for_model((info.width, info.height))
    if info.orientation in SWAPPING_ORIENTATIONS:
        needed = (needed[1], needed[0])
    # As Pillow's JpegImageFile.draft picks the scale.
    ratio = min(width // needed[0], height // needed[1])
    scale = next((s for s in _JPEG_SCALES if ratio >= s), 1)
    return -(-width // scale) * -(-height // scale)


def fit_longest_side(size: Size, longest: int) -> Size:
    """Return ``size`` scaled down so its longest side is ``longest``; never scaled up."""
    width, height = size
    if max(width, height) <= longest:
        return size
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_for_model(size: Size) -> Size:
    """Return ``size`` scaled down for the embedder; never scaled up.

    The shorter side becomes :data:`MODEL_SHORT_SIDE`, unless the longer side would then pass
    :data:`MODEL_MAX_LONG_SIDE`.
    """
    width, height = size
    scale = min(
        1.0, MODEL_SHORT_SIDE / min(width, height), MODEL_MAX_LONG_SIDE / max(width, height)
    )
    if scale >= 1.0:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _output_sizes(info: ImageInfo) -> tuple[Size, Size, Size]:
    """Return the thumbnail's, the preview's and the model picture's size for ``info``."""
    size = (info.width, info.height)
    return (
        fit_longest_side(size, THUMBNAIL_LONG_SIDE),
        fit_longest_side(size, PREVIEW_LONG_SIDE),
        fit_for_model(size),
    )


def _covers(size: Size, other: Size) -> bool:
    """Return whether a picture of ``size`` is at least ``other`` in both dimensions."""
    return size[0] >= other[0] and size[1] >= other[1]


def _largest(*sizes: Size) -> Size:
    """Return the smallest size that covers all of ``sizes`` in both dimensions."""
    return max(size[0] for size in sizes), max(size[1] for size in sizes)


def _decode(source: bytes | Path, info: ImageInfo, needed: Size) -> Image.Image:
    """Decode ``source`` as stored, reduced by ``draft`` to no less than ``needed`` (upright)."""
    transposed = info.orientation in SWAPPING_ORIENTATIONS
    # The decoder works on the stored pixels, which are sideways when orientation swaps sides.
    stored_needed = (needed[1], needed[0]) if transposed else needed
    with (
        source_stream(source) as (stream, _),
        open_image(stream, info.format, info.pixels) as image,
    ):
        stored_size = image.size
        # The size check guards against decoding anything validation has not seen. Its error
        # is raised after the block, where it is not mistaken for a damaged picture.
        if stored_size == info.stored_size:
            # JPEG only: libjpeg decodes straight at 1/2, 1/4 or 1/8 scale, never below the
            # size asked for. Other formats ignore draft().
            image.draft("RGB", stored_needed)
            image.load()
    if stored_size != info.stored_size:
        raise ValueError(f"info describes a {info.stored_size} picture, not {stored_size}")
    return image


class _Working:
    """The working picture of one decode: reduced, in a mode libvips resizes, ready to size.

    It is box-reduced to no less than :data:`_REDUCING_GAP` times ``needed`` (the largest output
    asked for, upright), which bounds what libvips is handed.

    Pictures in ``L`` or ``RGB`` go to libvips as decoded; their orientation and ICC profile
    are applied to each output, which is a fraction of the working picture's pixels. Others
    (transparency, CMYK) are made upright-ready RGB first, as before: sRGB, then flattened.
    """

    def __init__(self, decoded: Image.Image, info: ImageInfo, needed: Size) -> None:
        self._orientation = info.orientation
        transposed = info.orientation in SWAPPING_ORIENTATIONS
        stored_needed = (needed[1], needed[0]) if transposed else needed
        factor = min(
            decoded.width // (stored_needed[0] * _REDUCING_GAP),
            decoded.height // (stored_needed[1] * _REDUCING_GAP),
        )
        working = _working_reduced(decoded, factor)
        self._icc: bytes | None = None
        if working.mode in ("L", "RGB"):
            self._icc = working.info.get("icc_profile") or None
        else:
            working = flatten_onto_white(to_srgb(working))
        # Nothing from the original's metadata may follow the pixels into the outputs.
        working.info = {}
        self._resampler = Resampler(working)
        self._transposed = transposed

    def outputs(self, *sizes: Size) -> list[Image.Image]:
        """Return the picture at each of ``sizes`` (upright): RGB, sRGB, without metadata.

        Equal sizes (a small picture's preview and model picture) share one picture.
        """
        made: dict[Size, Image.Image] = {}
        for size in sizes:
            if size not in made:
                made[size] = self.output(size).image
        return [made[size] for size in sizes]

    def output(self, size: Size) -> Resampler:
        """Return the picture at ``size`` as :meth:`outputs` does, ready to be resized again.

        When orientation and colour left libvips's pixels as they were (an upright sRGB photo),
        they are resized again without being packed a second time.
        """
        stored = (size[1], size[0]) if self._transposed else size
        resampled = self._resampler.resampled(stored)
        picture = resampled.image
        if resampled is self._resampler:
            picture = picture.copy()  # the outputs are changed below and handed out
        picture = apply_orientation(picture, self._orientation)
        if self._icc is not None:
            picture.info["icc_profile"] = self._icc
            picture = to_srgb(picture)
        picture = flatten_onto_white(picture)
        picture.info = {}
        return resampled if picture is resampled.image else Resampler(picture)


def _working_reduced(image: Image.Image, factor: int) -> Image.Image:
    """Return ``image`` in a working mode, box-reduced by ``factor`` when it is over 1.

    A mode change copies the whole picture, up to 4 bytes a pixel next to a palette's 1 (a
    49-megapixel palette PNG with transparency took 425 MB), so a picture that is reduced anyway
    is converted and reduced a band at a time instead. The bands are a multiple of ``factor``
    rows high, so every box of the reduction lies in one band and the result is the same.
    """
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
    # What the conversion kept (the ICC profile that to_srgb reads) goes with the pixels.
    reduced.info = dict(bands[0].info)
    return reduced


def _encode_webp(image: Image.Image, quality: int, method: int) -> bytes:
    """Return ``image`` as a lossy WebP file without any metadata chunks."""
    buffer = io.BytesIO()
    # Explicitly empty metadata: Pillow's WebP encoder writes whatever is passed here and
    # nothing from image.info.
    image.save(
        buffer,
        format="WEBP",
        quality=quality,
        method=method,
        exif=b"",
        icc_profile=b"",
        xmp=b"",
    )
    return buffer.getvalue()
