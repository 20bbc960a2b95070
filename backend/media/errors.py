"""Provides the typed exceptions raised for pictures and uploads the server refuses.

Every exception carries a sentence meant for a person (``str(error)`` or ``error.message``), a
stable ``reason`` for logs and tests, and the protocol error ``code`` the server sends back, so
the server can map any :class:`MediaError` with one ``except`` clause.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Self

#: Display names of the formats, in the order we list them to people.
_DISPLAY_NAMES: dict[str, str] = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}


class MediaError(Exception):
    """A picture or upload was refused; the message says why in plain words.

    Attributes:
        message: The sentence shown to the person who sent the file.
        reason: A short stable identifier of the cause, e.g. ``"empty"`` or ``"pixels"``.
    """

    #: The protocol error code the server reports for this class of problem.
    code: ClassVar[str] = "bad_media"

    def __init__(self, message: str, *, reason: str) -> None:
        """Create the error.

        Args:
            message: The sentence shown to the person who sent the file.
            reason: A short stable identifier of the cause.
        """
        super().__init__(message)
        self.message = message
        self.reason = reason


class UnsupportedMedia(MediaError):
    """The file is not a picture we accept, or it is damaged."""

    code: ClassVar[str] = "unsupported_media"

    @classmethod
    def empty(cls) -> Self:
        """Return the error for a zero-byte file."""
        return cls("The file is empty", reason="empty")

    @classmethod
    def not_accepted(cls, found: str | None, accepted: Iterable[str]) -> Self:
        """Return the error for a file that is not in one of the accepted formats.

        Args:
            found: The format recognised from the file's first bytes (e.g. ``"GIF"``), or
                ``None`` when it is not a picture format we know.
            accepted: The accepted format names, e.g. ``{"JPEG", "PNG", "WEBP"}``.
        """
        formats = format_list(accepted)
        if found is None:
            message = f"The file is not a picture we accept: only {formats}"
        else:
            message = f"The file is a {found} picture; we accept only {formats}"
        return cls(message, reason="not_accepted")

    @classmethod
    def mismatch(cls, claimed: str) -> Self:
        """Return the error for a file whose first bytes claim a format its body is not.

        Args:
            claimed: The format named by the file's first bytes, e.g. ``"PNG"``.
        """
        name = _DISPLAY_NAMES.get(claimed, claimed)
        return cls(f"The file says it is {name} but is not", reason="mismatch")

    @classmethod
    def damaged(cls) -> Self:
        """Return the error for a picture that cannot be decoded completely."""
        return cls("The picture is truncated or damaged", reason="damaged")

    @classmethod
    def animated(cls) -> Self:
        """Return the error for an animated picture (we sell still pictures only)."""
        return cls("The picture is animated; we accept only still pictures", reason="animated")


class TooLarge(MediaError):
    """The file or the picture in it is over one of our limits."""

    code: ClassVar[str] = "too_large"

    @classmethod
    def file_size(cls, size: int | None, limit: int) -> Self:
        """Return the error for a file with more bytes than allowed.

        Args:
            size: The size of the file in bytes, or ``None`` when only known to be over.
            limit: The largest size allowed, in bytes.
        """
        if size is None:
            message = f"The file is larger than the limit of {human_bytes(limit)}"
        else:
            message = f"The file is {human_bytes(size)}; the limit is {human_bytes(limit)}"
        return cls(message, reason="bytes")

    @classmethod
    def pixels(cls, width: int, height: int, limit: int) -> Self:
        """Return the error for a picture with more pixels than allowed.

        Args:
            width: The width the picture's header declares.
            height: The height the picture's header declares.
            limit: The largest number of pixels allowed.
        """
        message = (
            f"The picture is {width:,} x {height:,} pixels ({human_pixels(width * height)}); "
            f"the limit is {human_pixels(limit)}"
        )
        return cls(message, reason="pixels")

    @classmethod
    def bomb(cls, limit: int) -> Self:
        """Return the error for a picture Pillow's decompression-bomb guard refused.

        Args:
            limit: The largest number of pixels allowed.
        """
        message = (
            f"The picture is too large to open safely; the limit is {human_pixels(limit)}"
        )
        return cls(message, reason="pixels")


class UploadError(MediaError):
    """A chunked upload cannot continue as asked."""

    code: ClassVar[str] = "bad_upload"


class UnknownUpload(UploadError):
    """The upload id names no upload in progress (never existed, finished or expired)."""

    def __init__(self) -> None:
        """Create the error."""
        super().__init__(
            "The upload is unknown, already finished or expired; please start it again",
            reason="unknown_upload",
        )


class OffsetMismatch(UploadError):
    """A chunk does not start where the upload currently ends.

    Attributes:
        expected: The offset the next chunk must start at (the bytes received so far).
        got: The offset the refused chunk claimed.
    """

    def __init__(self, expected: int, got: int) -> None:
        """Create the error.

        Args:
            expected: The offset the next chunk must start at.
            got: The offset the refused chunk claimed.
        """
        super().__init__(
            f"The upload has {expected:,} bytes so far but the chunk starts at byte {got:,}; "
            f"resume from byte {expected:,}",
            reason="offset",
        )
        self.expected = expected
        self.got = got


class ChecksumMismatch(UploadError):
    """The uploaded bytes do not have the SHA-256 the client announced."""

    def __init__(self) -> None:
        """Create the error."""
        super().__init__(
            "The uploaded file does not match its checksum; please upload it again",
            reason="checksum",
        )


def format_list(formats: Iterable[str]) -> str:
    """Return accepted formats as words, e.g. ``"JPEG, PNG and WebP"``."""
    order = list(_DISPLAY_NAMES)
    names = sorted(set(formats), key=lambda f: (order.index(f) if f in order else len(order), f))
    shown = [_DISPLAY_NAMES.get(name, name) for name in names]
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def human_bytes(size: int) -> str:
    """Return a byte count as people read it, e.g. ``"50 MB"`` or ``"812 KB"``."""
    if size < 1024:
        return f"{size:,} bytes"
    if size < 1024 * 1024:
        return f"{_trim(size / 1024)} KB"
    return f"{_trim(size / (1024 * 1024))} MB"


def human_pixels(pixels: int) -> str:
    """Return a pixel count as people read it, e.g. ``"108 megapixels"``."""
    # Below a tenth of a megapixel "0.0 megapixels" would say nothing; count pixels instead.
    if pixels < 100_000:
        return f"{pixels:,} pixels"
    return f"{_trim(pixels / 1_000_000)} megapixels"


def _trim(value: float) -> str:
    """Return ``value`` with one decimal at most and no trailing ``.0``."""
    if value >= 10:
        return f"{value:,.0f}"
    return f"{value:.1f}".rstrip("0").rstrip(".")
