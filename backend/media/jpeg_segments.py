"""Provides lossless removal of metadata from a JPEG file by rewriting its marker segments.

The compressed pixel data is copied byte for byte, never re-encoded. Kept: everything needed to
decode and show the picture as its owner sees it (tables, frame and scan headers, the JFIF
header without its embedded thumbnail, the Adobe colour-transform segment, the ICC profile).
Dropped: EXIF and XMP (APP1), MPF indexes and FlashPix data (APP2), Photoshop/IPTC (APP13),
every other APPn, comments, and anything after the end-of-image marker (the extra pictures of
an MPO file, or data smuggled after the picture). The Orientation tag is written back on its
own so the picture does not end up on its side.
"""

from __future__ import annotations

import re
from typing import Final

from backend.media.errors import UnsupportedMedia
from backend.media.exif import orientation_app1_payload

_SOI: Final = 0xD8
_EOI: Final = 0xD9
_SOS: Final = 0xDA
_APP0: Final = 0xE0
_APP1: Final = 0xE1
_APP2: Final = 0xE2
_APP14: Final = 0xEE
_APP15: Final = 0xEF
_COM: Final = 0xFE
#: Markers that stand alone, without a length field: TEM and the restart markers RST0-7.
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})

#: A scan's entropy-coded data ends at the first defined marker other than a restart marker.
#: Everything else is copied as is: stuffed bytes (FF 00), restart markers, fill bytes, and the
#: reserved codes (FF 02-BF) that only appear in corrupt data. libjpeg resynchronises past
#: those at the next restart marker, so copying them keeps the decoded pixels identical.
_SCAN_END: Final = re.compile(rb"\xff[\x01\xc0-\xcf\xd8-\xfe]")

#: JFIF header fields up to and excluding the thumbnail width and height (identifier, version,
#: density units, X and Y density).
_JFIF_HEADER_LENGTH: Final = 12


def strip_jpeg_metadata(data: bytes, orientation: int = 1) -> bytes:
    """Return ``data`` without metadata segments, keeping the pixel data bytes as they are.

    Args:
        data: A JPEG file that :func:`~backend.media.validate.inspect_image` accepted.
        orientation: The EXIF orientation to keep (1 writes none).

    Returns:
        The rewritten JPEG file.

    Raises:
        UnsupportedMedia: No start-of-image marker, or no scan of pixel data.
    """
    if not data.startswith(b"\xff\xd8"):
        raise UnsupportedMedia.damaged()
    out = bytearray(b"\xff\xd8")
    exif_pending = orientation != 1
    scans = 0
    pos = 2
    while (found := _next_marker(data, pos)) is not None:
        marker, pos = found
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            continue  # restart markers only mean something inside a scan, where they are kept
        if marker == _SOI or not _is_marker(marker):
            # Past the last scan (earlier, Pillow's marker parser would have refused the file):
            # the decoder never reads this far, so these bytes are dropped.
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if pos + 2 > len(data) or length < 2 or end > len(data):
            # Only reachable after the last scan (the decoder accepted the file, so it never
            # read this far): the picture ends here.
            break
        kept = _kept_payload(marker, data[pos + 2 : end])
        pos = end
        if kept is not None:
            # EXIF belongs right after SOI, or after the JFIF header when there is one.
            if exif_pending and not (marker == _APP0 and kept.startswith(b"JFIF\x00")):
                out += _segment(_APP1, orientation_app1_payload(orientation))
                exif_pending = False
            out += _segment(marker, kept)
        if marker == _SOS:
            scans += 1
            scan_end = _end_of_scan(data, pos)
            # Through a view: the pixel data (most of the file) is copied once, not twice.
            out += memoryview(data)[pos:scan_end]
            pos = scan_end
    if scans == 0:
        raise UnsupportedMedia.damaged()
    # A missing end-of-image marker is tolerated (as the decoder did) and written back.
    out += b"\xff\xd9"
    return bytes(out)


def _kept_payload(marker: int, payload: bytes) -> bytes | None:
    """Return the payload to write for a segment, or ``None`` to drop the segment."""
    if marker == _APP0:
        if payload.startswith(b"JFIF\x00") and len(payload) >= _JFIF_HEADER_LENGTH + 2:
            # Zero thumbnail size: an embedded thumbnail can show what a later crop removed.
            return payload[:_JFIF_HEADER_LENGTH] + b"\x00\x00"
        return None
    if marker == _APP2:
        return payload if payload.startswith(b"ICC_PROFILE\x00") else None
    if marker == _APP14:
        # Tells the decoder whether the channels are YCbCr/YCCK or RGB/CMYK: needed for colour.
        return payload if payload.startswith(b"Adobe") else None
    if _APP0 <= marker <= _APP15 or marker == _COM:
        return None
    return payload


def _is_marker(code: int) -> bool:
    """Return whether ``code`` is a defined marker (TEM or 0xC0-0xFE; 0x02-0xBF are reserved)."""
    return code == 0x01 or 0xC0 <= code <= 0xFE


def _segment(marker: int, payload: bytes) -> bytes:
    """Return a marker segment: the marker, the big-endian length, the payload."""
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _next_marker(data: bytes, pos: int) -> tuple[int, int] | None:
    """Find the next marker at or after ``pos``.

    Stray bytes before a marker are skipped, as libjpeg skips them, so a file the decoder
    accepted is not refused here.

    Returns:
        The marker code and the position just after it, or ``None`` at the end of the data.
    """
    size = len(data)
    while (start := data.find(b"\xff", pos)) >= 0:
        code_at = start + 1
        while code_at < size and data[code_at] == 0xFF:  # fill bytes may precede a marker
            code_at += 1
        if code_at >= size:
            return None
        if data[code_at] != 0x00:
            return data[code_at], code_at + 1
        pos = code_at + 1
    return None


def _end_of_scan(data: bytes, pos: int) -> int:
    """Return where the entropy-coded data starting at ``pos`` ends (the next real marker)."""
    match = _SCAN_END.search(data, pos)
    return len(data) if match is None else match.start()
