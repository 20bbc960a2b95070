"""Provides the limits a picture must stay within to be accepted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: Largest accepted file, in bytes (50 MiB).
DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024

#: Largest accepted picture, in pixels (width x height).
DEFAULT_MAX_PIXELS: Final = 50_000_000

#: Formats (Pillow's names) the media pipeline knows how to validate, derive and sanitise.
SUPPORTED_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP"})


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """What a picture must stay within to be accepted.

    Attributes:
        max_bytes: Largest file size, in bytes.
        max_pixels: Largest width x height, checked from the header before decoding.
        formats: Accepted formats, by Pillow's name; a subset of :data:`SUPPORTED_FORMATS`.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    formats: frozenset[str] = field(default=SUPPORTED_FORMATS)

    def __post_init__(self) -> None:
        """Reject limits that would make every picture fail, or let unknown formats in."""
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError("max_bytes and max_pixels must be positive")
        if not self.formats or not self.formats <= SUPPORTED_FORMATS:
            raise ValueError(f"formats must be a non-empty subset of {sorted(SUPPORTED_FORMATS)}")


#: The limits the server uses unless configured otherwise.
DEFAULT_LIMITS: Final = MediaLimits()
