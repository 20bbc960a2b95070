"""Provides the sans-I/O codec: messages to msgpack frames and frames back to typed messages.

Bytes in, messages out, no sockets: the server transport, the client session and the tests all
use this one codec, so strict decoding is defined once.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from protocol.errors import BadRequest
from protocol.messages import (
    accounts,
    alerts,
    base,
    catalogue,
    commerce,
    favourites,
    inbox,
    live,
    sales,
    vision,
)

#: Every message type that may cross the wire, in one tagged union.
MESSAGE_TYPES: tuple[type[base.Message], ...] = (
    base.MESSAGES
    + accounts.MESSAGES
    + live.MESSAGES
    + catalogue.MESSAGES
    + commerce.MESSAGES
    + inbox.MESSAGES
    + favourites.MESSAGES
    + sales.MESSAGES
    + vision.MESSAGES
    + alerts.MESSAGES
)

#: Frames above this size are refused with ``bad_request`` (the transport cuts far larger ones).
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Messages a client sends before it has logged in stay under this (Hello, Login, CreateAccount,
#: Resume take a few hundred bytes): the server cuts a larger frame with 1009 unread.
MAX_PRELOGIN_MESSAGE_BYTES = 64 * 1024

M = TypeVar("M", bound=base.Message)

_encoder = msgspec.msgpack.Encoder()
_union: Any = MESSAGE_TYPES[0]
for _message_type in MESSAGE_TYPES[1:]:
    _union = _union | _message_type
_decoder: msgspec.msgpack.Decoder[base.Message] = msgspec.msgpack.Decoder(_union)
_loose_decoder = msgspec.msgpack.Decoder()
_REQUEST_TAGS = frozenset(
    cls.__struct_config__.tag for cls in MESSAGE_TYPES if issubclass(cls, base.Request)
)
_DEFAULT_REQUEST_ID = base.Request().id


def encode(message: base.Message) -> bytes:
    """Encode one message as the payload of one binary frame."""
    return _encoder.encode(message)


def encode_into(message: base.Message, buffer: bytearray) -> None:
    """Encode one message into ``buffer``, replacing its contents: the bytes :func:`encode`
    gives, without a new object (a buffer used again keeps its memory when it shrinks).

    Raises:
        BufferError: if the buffer must grow while a view of it is alive.
    """
    _encoder.encode_into(message, buffer)


def decode(frame: bytes | str, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> base.Message:
    """Decode one frame into a typed message.

    Raises:
        BadRequest: for text frames, oversized frames, undecodable bytes, unknown tags, wrong
            types and missing or unknown fields. The message says which, in words.
    """
    if isinstance(frame, str):
        raise BadRequest("Text frames are not part of the protocol; send msgpack in binary frames")
    if len(frame) > max_bytes:
        raise BadRequest(f"The message is {len(frame):,} bytes; the limit is {max_bytes:,} bytes")
    try:
        return _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Undecodable message: {exc}") from None
    except UnicodeDecodeError:
        # msgspec lets this one through for strings and map keys that are not UTF-8.
        raise BadRequest("Undecodable message: a string is not valid UTF-8") from None
    except RecursionError:
        # A few bytes of nested arrays in a free-form field reach the interpreter's limit.
        raise BadRequest("Undecodable message: nested too deeply") from None


def decode_as(frame: bytes, expected: type[M], **kwargs: Any) -> M:
    """Decode a frame and check that it is of the ``expected`` type."""
    message = decode(frame, **kwargs)
    if not isinstance(message, expected):
        raise BadRequest(f"Expected {expected.__name__}, got {type(message).__name__}")
    return message


def request_id_of(frame: bytes | str) -> int:
    """Best-effort request id of a frame that failed to decode, so its error can be correlated.

    Returns 0 when no plausible id can be read.
    """
    if isinstance(frame, str) or len(frame) > DEFAULT_MAX_MESSAGE_BYTES:
        return 0
    try:
        raw = _loose_decoder.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return 0
    if isinstance(raw, dict):
        tag = raw.get("type")
        if "id" not in raw and isinstance(tag, str) and tag in _REQUEST_TAGS:
            # The default id is left out of the frame (omit_defaults); decoding would restore it.
            return _DEFAULT_REQUEST_ID
        value = raw.get("id")
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 2**53:
            return value
    return 0
