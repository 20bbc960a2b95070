"""Provides lossless removal of metadata from a WebP file by rewriting its RIFF chunks.

The compressed image chunks are copied byte for byte. Kept: ``VP8X`` (with its EXIF and XMP
flags updated), ``ICCP``, ``ALPH``, ``VP8 ``, ``VP8L`` and, for a one-frame animation
container, ``ANIM``/``ANMF``. Dropped: ``EXIF``, ``XMP `` and unknown chunks, and anything
after the RIFF payload. The Orientation tag is written back on its own in a fresh ``EXIF``
chunk so the picture does not end up on its side.
"""

from __future__ import annotations

import struct
from typing import Final

from backend.media.errors import UnsupportedMedia
from backend.media.exif import orientation_tiff

_KEPT: Final = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})
_IMAGE_DATA: Final = frozenset({b"VP8 ", b"VP8L", b"ANMF"})
_FLAG_EXIF: Final = 0x08
_FLAG_XMP: Final = 0x04
_VP8X_PAYLOAD_LENGTH: Final = 10


def strip_webp_metadata(data: bytes, orientation: int = 1) -> bytes:
    """Return ``data`` without EXIF, XMP or unknown chunks.

    Args:
        data: A WebP file that :func:`~backend.media.validate.inspect_image` accepted.
        orientation: The EXIF orientation to keep (1 writes none). The simple (non-``VP8X``)
            format cannot carry EXIF, and so never has an orientation to keep.

    Returns:
        The rewritten WebP file.

    Raises:
        UnsupportedMedia: The RIFF structure is broken.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise UnsupportedMedia.damaged()
    riff_end = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    chunks: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= riff_end:
        kind, length = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + length
        if end > riff_end:
            raise UnsupportedMedia.damaged()
        if kind in _KEPT:
            chunks.append((kind, data[pos + 8 : end]))
        pos = end + (length & 1)  # payloads are padded to an even length
    if not any(kind in _IMAGE_DATA for kind, _ in chunks):
        raise UnsupportedMedia.damaged()

    if chunks[0][0] == b"VP8X":
        header = chunks[0][1]
        if len(header) < _VP8X_PAYLOAD_LENGTH:
            raise UnsupportedMedia.damaged()
        flags = header[0] & ~(_FLAG_EXIF | _FLAG_XMP)
        if orientation != 1:
            flags |= _FLAG_EXIF
            chunks.append((b"EXIF", orientation_tiff(orientation)))  # EXIF goes last
        chunks[0] = (b"VP8X", bytes((flags,)) + header[1:])

    body = b"".join(_chunk(kind, payload) for kind, payload in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """Return a RIFF chunk: type, little-endian length, payload and padding to even length."""
    padding = b"\x00" * (len(payload) & 1)
    return kind + struct.pack("<I", len(payload)) + payload + padding
