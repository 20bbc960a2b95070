"""Provides sample pictures for the media tests; it holds no tests itself.

It is named ``test_media_*`` only to stay inside the media tests' part of the tree.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

from PIL import Image, ImageCms

#: EXIF tag numbers used by the samples.
ORIENTATION = 0x0112
MAKE = 0x010F
GPS_IFD = 0x8825

XMP_PACKET = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b"<rdf:Description>secret-xmp</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    """Return EXIF with a camera make, a GPS position and optionally an orientation."""
    exif = Image.Exif()
    exif[MAKE] = "SecretCam"
    exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif


def srgb_icc() -> bytes:
    """Return an sRGB ICC profile."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def halves(size: tuple[int, int], left: str = "red", right: str = "blue") -> Image.Image:
    """Return an RGB picture whose left half is ``left`` and right half ``right``."""
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Return ``image`` saved in ``fmt`` with Pillow's ``params``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (64, 48), **params: object) -> bytes:
    """Return a two-colour JPEG."""
    return encode(halves(size), "JPEG", **params)


def png(size: tuple[int, int] = (64, 48), **params: object) -> bytes:
    """Return a two-colour PNG."""
    return encode(halves(size), "PNG", **params)


def webp(size: tuple[int, int] = (64, 48), **params: object) -> bytes:
    """Return a two-colour WebP."""
    return encode(halves(size), "WEBP", **params)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """Return a PNG chunk with a correct CRC."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_chunk_types(data: bytes) -> list[bytes]:
    """Return the chunk types of a PNG file, in order."""
    return [kind for kind, _ in png_chunks(data)]


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(type, payload)`` for every chunk of a PNG file."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Return ``(type, payload)`` for every top-level chunk of a WebP file."""
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, pos)
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return chunks


def png_header_only(width: int, height: int, mode_byte: int = 0) -> bytes:
    """Return a PNG that declares ``width`` x ``height`` but holds almost no pixel data.

    Decoding it fails as truncated, so a :class:`TooLarge` for it proves the size was refused
    from the header alone.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode_byte, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_bomb(width: int, height: int) -> bytes:
    """Return a complete, valid all-black greyscale PNG; huge pixels, few kilobytes."""
    compressor = zlib.compressobj(6)
    rows_per_block = 100
    block = (b"\x00" * (width + 1)) * rows_per_block  # filter byte + a row of zeros
    parts = [compressor.compress(block) for _ in range(height // rows_per_block)]
    parts.append(compressor.compress((b"\x00" * (width + 1)) * (height % rows_per_block)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """Return ``(marker, payload)`` for the JPEG marker segments before the first scan."""
    segments = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        if marker == 0xDA:
            break
        pos += 2 + length
    return segments
