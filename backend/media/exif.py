"""Provides the smallest EXIF block there is: one holding the orientation and nothing else.

Stripping all EXIF from a phone photo would also drop its Orientation tag, and the picture would
then show on its side. The sanitisers write this block back instead of the original EXIF.
"""

from __future__ import annotations

import struct
from typing import Final

_ORIENTATION_TAG: Final = 0x0112
_SHORT: Final = 3


def orientation_tiff(orientation: int) -> bytes:
    """Return a TIFF structure (the body of an EXIF block) holding only ``Orientation``.

    This is the form PNG ``eXIf`` and WebP ``EXIF`` chunks carry; JPEG's APP1 segment prefixes
    it with ``b"Exif\\x00\\x00"`` (see :func:`orientation_app1_payload`).

    Args:
        orientation: An EXIF orientation, 1 to 8.
    """
    if orientation not in range(1, 9):
        raise ValueError(f"EXIF orientation must be 1 to 8, not {orientation}")
    return (
        b"MM\x00\x2a"  # big-endian TIFF header
        + struct.pack(">I", 8)  # the first IFD follows the header
        + struct.pack(">H", 1)  # one entry
        # tag, type SHORT, count 1, value left-justified in the 4-byte field
        + struct.pack(">HHIHH", _ORIENTATION_TAG, _SHORT, 1, orientation, 0)
        + struct.pack(">I", 0)  # no next IFD
    )


def orientation_app1_payload(orientation: int) -> bytes:
    """Return the payload of a JPEG APP1 segment holding only ``Orientation``."""
    return b"Exif\x00\x00" + orientation_tiff(orientation)
