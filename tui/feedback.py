"""Provides the words the TUI uses for failures: short, human, never a traceback."""

from __future__ import annotations

from websockets.exceptions import InvalidHandshake, InvalidURI

from protocol.errors import PixmartError, RateLimited, Unavailable
from protocol.messages.accounts import SessionEndReason
from protocol.trust import FingerprintMismatch, TrustError, UnknownServer


def describe_error(exc: BaseException) -> str:
    """One or two short sentences saying what went wrong, for a notification.

    Args:
        exc: the failure, typically raised by a :class:`~protocol.client.Session` call.

    Returns:
        Words a person can act on.
    """
    if is_warming_up(exc):
        wait = max(1, round(exc.retry_after or 5)) if isinstance(exc, PixmartError) else 5
        return f"Image search is warming up on the server; try again in {wait} s."
    if isinstance(exc, RateLimited) and exc.retry_after:
        return f"{exc.message} Try again in {max(1, round(exc.retry_after))} s."
    if isinstance(exc, PixmartError):
        return exc.message
    if isinstance(exc, FingerprintMismatch):
        return f"The certificate of {exc.server} has changed; not connected."
    if isinstance(exc, UnknownServer):
        return f"{exc.server} is not trusted; not connected."
    if isinstance(exc, TrustError):
        return first_line(str(exc))
    if isinstance(exc, ConnectionRefusedError):
        return "The server refused the connection (is it running?)"
    if isinstance(exc, TimeoutError):
        return "The server did not answer in time."
    if isinstance(exc, InvalidURI):
        return "The server address is not valid."
    if isinstance(exc, InvalidHandshake):
        return "The server did not accept the connection."
    if isinstance(exc, OSError):
        return f"Cannot reach the server: {exc.strerror or exc}"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__})."


_SESSION_ENDS = {
    SessionEndReason.PASSWORD_CHANGED: (
        "You were logged out because your password was changed on another device."
    ),
    SessionEndReason.LOGGED_OUT: (
        "You were logged out because this session was logged out on another device."
    ),
    SessionEndReason.EXPIRED: "You were logged out because your session expired.",
    SessionEndReason.REVOKED: "You were logged out by the server's administrator.",
}


def describe_session_end(reason: SessionEndReason | None) -> str:
    """One line saying why the person is back at the login screen.

    Args:
        reason: what the server said (``None``: the session was found ended on a reconnect).
    """
    if reason is None:
        return "Your session ended. Please log in again."
    return _SESSION_ENDS.get(reason, "Your session ended. Please log in again.")


def is_warming_up(exc: BaseException) -> bool:
    """Whether ``exc`` says the server's image model is still loading (not a real failure)."""
    return isinstance(exc, Unavailable) and (exc.details or {}).get("vision") == "warming"


def first_line(text: str) -> str:
    """The first line of ``text`` (reasons from the session may span several lines)."""
    return text.strip().splitlines()[0] if text.strip() else ""


def normalise_server_url(text: str) -> str:
    """A ``wss://host:port`` URL from what a person typed (``host:port`` is enough).

    Raises:
        ValueError: the text is empty or names another scheme.
    """
    text = text.strip().rstrip("/")
    if not text:
        raise ValueError("Enter the server address, e.g. wss://127.0.0.1:8765")
    if "://" not in text:
        text = f"wss://{text}"
    if not text.startswith("wss://"):
        raise ValueError("Only wss:// servers are supported")
    if text == "wss://":
        raise ValueError("Enter the server address, e.g. wss://127.0.0.1:8765")
    return text


__all__ = [
    "describe_error",
    "describe_session_end",
    "first_line",
    "is_warming_up",
    "normalise_server_url",
]
