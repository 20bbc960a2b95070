"""Provides recognition of a picture's real format from its first bytes ("magic numbers").

We decide what a file is from its content only: client-supplied names and MIME types are never
consulted, so a renamed file cannot pick which parser runs on it.
"""

from __future__ import annotations

from typing import Final

#: How many leading bytes :func:`sniff_format` needs to see.
SNIFF_BYTES: Final = 32

#: Formats we can accept, by Pillow's name, with the MIME type we serve them as.
MIME_TYPES: Final[dict[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}

# ISO-BMFF brands ("ftyp" box) of the HEIF family, told apart so that an iPhone photo gets a
# message naming HEIC rather than "not a picture".
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIC_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
)


def sniff_format(head: bytes) -> str | None:
    """Return the picture format the first bytes of a file announce.

    Args:
        head: At least the first :data:`SNIFF_BYTES` bytes of the file (fewer if it is shorter).

    Returns:
        ``"JPEG"``, ``"PNG"`` or ``"WEBP"`` (Pillow's names) for the formats we can accept; a
        display name such as ``"GIF"`` or ``"HEIC"`` for picture formats we recognise but do not
        accept; ``None`` for anything else. Only the announcement is checked here: whether the
        rest of the file lives up to it is for the decoder to find out.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return _foreign_format(head)


def _foreign_format(head: bytes) -> str | None:
    """Return the display name of a picture format we recognise but do not accept."""
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":
        # "BM" alone is too common at the start of text; the two reserved fields must be zero.
        return "BMP"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        if brand in _HEIC_BRANDS:
            return "HEIC"
        if brand == b"jxl ":
            return "JPEG XL"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JPEG XL"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG 2000"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "ICO"
    if head.startswith(b"8BPS"):
        return "Photoshop"
    return None
