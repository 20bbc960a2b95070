"""Provides the mapping of the media pipeline's exceptions onto the protocol's typed errors."""

from __future__ import annotations

from backend.media import errors as media
from protocol.errors import BadRequest, Conflict, NotFound, PixmartError, TooLarge, UnsupportedMedia


def protocol_error(exc: media.MediaError) -> PixmartError:
    """Return the wire error for a refused picture or upload, keeping its human message.

    An offset mismatch becomes ``conflict`` with ``details["offset"]``: where the client must
    resume.
    """
    if isinstance(exc, media.TooLarge):
        return TooLarge(exc.message)
    if isinstance(exc, media.UnsupportedMedia):
        return UnsupportedMedia(exc.message)
    if isinstance(exc, media.OffsetMismatch):
        return Conflict(exc.message, details={"offset": exc.expected})
    if isinstance(exc, media.UnknownUpload):
        return NotFound(exc.message)
    return BadRequest(exc.message)
