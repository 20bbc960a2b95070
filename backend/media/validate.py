"""Provides the gatekeeper that decides whether an uploaded file is a picture we accept.

:func:`inspect_image` runs the checks cheapest first, so hostile files are refused before they
cost memory or CPU:

1. the byte size (zero bytes, or over ``max_bytes``), without reading the file;
2. the real format, from the magic bytes (never from a name or a client's MIME type);
3. Pillow identifies the file with only that format's plugin, and must agree with the magic;
4. the pixel count declared in the header, before any pixel memory is allocated (Pillow's own
   decompression-bomb guard backs this up, see :mod:`backend.media.decoding`);
5. animated pictures are refused: a shop item is one still picture, and decoding only the
   first frame would let damaged or oversized later frames through to people who download the
   original;
6. a full decode (``load()``), so truncated or damaged files are refused now rather than when
   someone first views them.

The upload pipeline calls :func:`inspect_and_decode` instead: the same checks, whose decode it
keeps to make the derivatives from, so an upload is decoded once.

Everything it raises is a :class:`~backend.media.errors.MediaError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile

from backend.media.decoding import open_image, source_stream
from backend.media.errors import TooLarge, UnsupportedMedia
from backend.media.imaging import SWAPPING_ORIENTATIONS, exif_orientation
from backend.media.limits import DEFAULT_LIMITS, MediaLimits
from backend.media.sniff import MIME_TYPES, SNIFF_BYTES, sniff_format

__all__ = ["DEFAULT_LIMITS", "ImageInfo", "MediaLimits", "inspect_and_decode", "inspect_image"]

Size = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What validation learned about an accepted picture.

    Attributes:
        format: ``"JPEG"``, ``"PNG"`` or ``"WEBP"`` (JPEGs Pillow calls "MPO" are ``"JPEG"``).
        width: Width as people see the picture, i.e. after EXIF orientation is applied.
        height: Height as people see the picture, i.e. after EXIF orientation is applied.
        mime: The MIME type to serve the original and its sanitised copy with.
        orientation: The EXIF orientation (1-8) of the stored pixels; 1 means as stored.
        byte_size: Size of the file in bytes.
    """

    format: str
    width: int
    height: int
    mime: str
    orientation: int = 1
    byte_size: int = 0

    @property
    def stored_size(self) -> tuple[int, int]:
        """Return ``(width, height)`` of the pixels as stored, before orientation."""
        if self.orientation in SWAPPING_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height

    @property
    def pixels(self) -> int:
        """Return the number of pixels (width x height)."""
        return self.width * self.height


def inspect_image(
    source: bytes | Path, limits: MediaLimits = DEFAULT_LIMITS, *, decode: bool = True
) -> ImageInfo:
    """Check that ``source`` is a complete, still JPEG, PNG or WebP picture within ``limits``.

    Runs synchronously and decodes the whole picture: call it from a worker thread.

    Args:
        source: The uploaded bytes, or the path of a file the server wrote itself (a finished
            upload or a stored blob). There is deliberately no file-name parameter.
        limits: The size, pixel and format limits to enforce.
        decode: ``False`` skips step 6, the full decode, for a caller that decodes the picture
            itself right after and so finds damage there (search by picture, which decodes
            once, reduced, within a pixel budget). The orientation is then only what the
            headers say: a PNG whose eXIf chunk follows its pixel data counts as upright.

    Returns:
        What was learned about the picture.

    Raises:
        UnsupportedMedia: Empty, not an accepted format, not what its magic bytes claim,
            animated, truncated or damaged.
        TooLarge: Over ``limits.max_bytes`` or ``limits.max_pixels``.
    """
    with _opened(source, limits) as (image, fmt, byte_size):
        if decode:
            image.load()
            # Read after load(): a PNG may keep its eXIf chunk after the pixel data.
            orientation = exif_orientation(image)
        else:
            orientation = _header_orientation(image)
    return _info(fmt, image.size, orientation, byte_size)


def inspect_and_decode(
    source: bytes | Path, limits: MediaLimits, wanted: Callable[[ImageInfo], Size]
) -> tuple[ImageInfo, Image.Image]:
    """Validate ``source`` as :func:`inspect_image` does, and keep the pixels of its decode.

    The upload pipeline makes every derivative from this one decode. A JPEG is decoded by
    libjpeg at 1/2, 1/4 or 1/8 scale when that still covers ``wanted`` (``draft``): the scaled
    decode still reads and checks every byte of the compressed data, so a truncated or damaged
    file is refused all the same. PNG and WebP are decoded whole.

    Args:
        source: As for :func:`inspect_image`.
        limits: As for :func:`inspect_image`.
        wanted: Given what the headers say (orientation included), the smallest size the
            decode must cover, as people see the picture (upright).

    Returns:
        What was learned, and the decoded picture as stored (not yet upright), in whatever
        mode the decoder produced, at least ``wanted`` or whole.

    Raises:
        UnsupportedMedia, TooLarge: As :func:`inspect_image`.
    """
    with _opened(source, limits) as (image, fmt, byte_size):
        header = _info(fmt, image.size, _header_orientation(image), byte_size)
        width, height = wanted(header)
        if header.orientation in SWAPPING_ORIENTATIONS:
            width, height = height, width  # the decoder works on the stored, sideways pixels
        image.draft("RGB", (width, height))  # JPEG only; other formats ignore it
        image.load()
        orientation = exif_orientation(image)
    # The header's size, not the reduced decode's, is the picture's.
    return _info(fmt, header.stored_size, orientation, byte_size), image


@contextmanager
def _opened(
    source: bytes | Path, limits: MediaLimits
) -> Iterator[tuple[ImageFile.ImageFile, str, int]]:
    """Run checks 1 to 5 and yield the opened, not yet decoded picture, its format and bytes.

    Pillow's exceptions in the ``with`` body are translated as by
    :func:`~backend.media.decoding.open_image`.
    """
    with source_stream(source) as (stream, byte_size):
        if byte_size == 0:
            raise UnsupportedMedia.empty()
        if byte_size > limits.max_bytes:
            raise TooLarge.file_size(byte_size, limits.max_bytes)

        fmt = sniff_format(stream.read(SNIFF_BYTES))
        if fmt is None or fmt not in limits.formats:
            raise UnsupportedMedia.not_accepted(fmt, limits.formats)
        stream.seek(0)

        with open_image(stream, fmt, limits.max_pixels) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise TooLarge.pixels(width, height, limits.max_pixels)
            # MPO (camera JPEG with extra pictures appended) reports several frames; those are
            # not an animation and only the first, the photo itself, is ever used.
            if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
                raise UnsupportedMedia.animated()
            yield image, fmt, byte_size


def _info(fmt: str, stored_size: Size, orientation: int, byte_size: int) -> ImageInfo:
    """The :class:`ImageInfo` of a picture stored ``stored_size`` with EXIF ``orientation``."""
    width, height = stored_size
    if orientation in SWAPPING_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        mime=MIME_TYPES[fmt],
        orientation=orientation,
        byte_size=byte_size,
    )


def _header_orientation(image: Image.Image) -> int:
    """The EXIF orientation the headers give, without decoding any pixels.

    Pillow's PNG plugin decodes the whole picture when asked for EXIF it has not seen yet (an
    eXIf chunk may follow the pixel data), so a PNG without one before its pixels counts as
    upright here.
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return exif_orientation(image)
