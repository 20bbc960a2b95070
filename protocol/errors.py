"""Provides the typed error codes of the wire protocol and the exception class for each."""

from __future__ import annotations

import enum
from typing import ClassVar


class ErrorCode(enum.StrEnum):
    """Every error a reply can carry; the wire value is the lower-case name."""

    BAD_REQUEST = "bad_request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA = "unsupported_media"
    OUT_OF_STOCK = "out_of_stock"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class PixmartError(Exception):
    """An error that crosses the wire: raised by handlers, re-raised by the client.

    Attributes:
        code: the protocol error code.
        message: words a person can read; never a traceback and never a secret.
        retry_after: seconds to wait before trying again (``rate_limited``, ``unavailable``).
        details: small structured extras (e.g. which cart lines failed), or ``None``.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.details = details


class BadRequest(PixmartError):
    """The message was malformed, of an unknown type, or its values were invalid."""

    code = ErrorCode.BAD_REQUEST


class Unauthenticated(PixmartError):
    """The request needs a logged-in session, or the credentials were wrong."""

    code = ErrorCode.UNAUTHENTICATED


class Forbidden(PixmartError):
    """The session is valid but may not do this."""

    code = ErrorCode.FORBIDDEN


class NotFound(PixmartError):
    """The thing asked for does not exist or is not visible to this user."""

    code = ErrorCode.NOT_FOUND


class Conflict(PixmartError):
    """The request clashes with the current state (name taken, stale version, ...)."""

    code = ErrorCode.CONFLICT


class RateLimited(PixmartError):
    """Too many requests or failed logins; ``retry_after`` says when to try again."""

    code = ErrorCode.RATE_LIMITED


class TooLarge(PixmartError):
    """A message, file or picture exceeds a limit."""

    code = ErrorCode.TOO_LARGE


class UnsupportedMedia(PixmartError):
    """A file is not a picture in an accepted format, or is damaged."""

    code = ErrorCode.UNSUPPORTED_MEDIA


class OutOfStock(PixmartError):
    """Not enough units are left to satisfy the request."""

    code = ErrorCode.OUT_OF_STOCK


class Unavailable(PixmartError):
    """The server cannot serve this right now (shutting down, overloaded, offline)."""

    code = ErrorCode.UNAVAILABLE


class Internal(PixmartError):
    """Something went wrong on the server; the details are in its log, not on the wire."""

    code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[PixmartError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        RateLimited,
        TooLarge,
        UnsupportedMedia,
        OutOfStock,
        Unavailable,
        Internal,
    )
}


def error_class(code: ErrorCode) -> type[PixmartError]:
    """Return the exception class that stands for ``code``."""
    return _BY_CODE[code]
