"""Provides the metadata-free copy of an original picture that is served to everyone else.

The owner downloads their file exactly as uploaded. Anyone else (a public item's buyers and
browsers) gets :func:`sanitized_original`: the same pixels, losslessly (the compressed data is
copied, never re-encoded), without EXIF (GPS, camera serial numbers, dates), XMP, IPTC,
comments, embedded thumbnails or trailing data. ICC profiles stay, so colours do not change,
and the EXIF orientation is written back on its own so the picture is not shown on its side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from backend.media.jpeg_segments import strip_jpeg_metadata
from backend.media.png_chunks import strip_png_metadata
from backend.media.validate import ImageInfo
from backend.media.webp_chunks import strip_webp_metadata

_STRIPPERS: Final[dict[str, Callable[[bytes, int], bytes]]] = {
    "JPEG": strip_jpeg_metadata,
    "PNG": strip_png_metadata,
    "WEBP": strip_webp_metadata,
}


def sanitized_original(data: bytes, info: ImageInfo) -> bytes:
    """Return the original picture without metadata, for serving to anyone but its owner.

    Runs synchronously (it copies the whole file): call it from a worker thread.

    Args:
        data: The original file, as accepted by :func:`~backend.media.validate.inspect_image`.
        info: What :func:`~backend.media.validate.inspect_image` returned for ``data``; its
            format picks the rewriter and its orientation is written back.

    Returns:
        The sanitised file, in the same format and MIME type as the original.

    Raises:
        UnsupportedMedia: The file's structure is broken.
    """
    return _STRIPPERS[info.format](data, info.orientation)
