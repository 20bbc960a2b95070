"""Provides lossless removal of metadata from a PNG file by rewriting its chunk list.

Chunks are copied byte for byte (their CRCs stay valid), so the pixels are exactly the
original's, 16-bit samples included. Only chunks that define how the picture looks are kept;
text (``tEXt``, ``zTXt``, ``iTXt``, which also carries XMP), ``eXIf``, ``tIME``, animation and
private chunks are dropped, as is anything after ``IEND``. The Orientation tag is written back
on its own in a fresh ``eXIf`` chunk so the picture does not end up on its side.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from backend.media.errors import UnsupportedMedia
from backend.media.exif import orientation_tiff

_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

#: Critical chunks plus the ancillary ones that change how the picture is displayed.
_KEPT: Final = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND",
        b"tRNS", b"bKGD", b"pHYs", b"sBIT",
        b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCV", b"cLLI",
    }
)  # fmt: skip


def strip_png_metadata(data: bytes, orientation: int = 1) -> bytes:
    """Return ``data`` with only the chunks that define the picture.

    Args:
        data: A PNG file that :func:`~backend.media.validate.inspect_image` accepted.
        orientation: The EXIF orientation to keep (1 writes none).

    Returns:
        The rewritten PNG file.

    Raises:
        UnsupportedMedia: The data does not start with the PNG signature.
    """
    if not data.startswith(_SIGNATURE):
        raise UnsupportedMedia.damaged()
    out = bytearray(_SIGNATURE)
    exif_pending = orientation != 1
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if kind == b"IDAT" and exif_pending:
            # eXIf must come before the image data.
            out += _chunk(b"eXIf", orientation_tiff(orientation))
            exif_pending = False
        if end > len(data):
            # The decoder accepted a file cut inside its last chunk, so the pixel data it
            # needed was there: keep what there is of the image data, with a correct CRC.
            if kind == b"IDAT":
                out += _chunk(kind, data[pos + 8 :])
            break
        if kind in _KEPT:
            out += data[pos:end]
        if kind == b"IEND":
            return bytes(out)
        pos = end
    out += _chunk(b"IEND", b"")
    return bytes(out)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """Return a complete chunk: length, type, payload and CRC."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
