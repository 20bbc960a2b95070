"""Provides the base message classes, the hello exchange and the error reply."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from protocol.errors import ErrorCode

#: Bumped on any incompatible change to a message; the hello exchange compares it.
PROTOCOL_VERSION = 1

#: Request ids are client-chosen positive integers, unique within one client session.
RequestId = Annotated[int, msgspec.Meta(ge=1, le=2**53)]


class _KeywordOnlyMeta(msgspec.StructMeta):
    """Makes every message keyword-only, so subclasses may add required fields after ``id``."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _KeywordOnlyMeta:
        kwargs.setdefault("kw_only", True)
        return super().__new__(mcs, name, bases, namespace, **kwargs)


class Message(
    msgspec.Struct,
    metaclass=_KeywordOnlyMeta,
    tag_field="type",
    tag=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    """Base of every message; the class name is the wire tag."""


class Request(Message, kw_only=True):
    """A client request; ``id`` is chosen by the client and echoed by the reply."""

    id: RequestId = 1


class Reply(Message, kw_only=True):
    """A successful reply to the request with the same ``id``."""

    id: int


class Event(Message):
    """A server-initiated notice; it carries no request id."""


class ErrorReply(Reply):
    """A typed failure for the request with this ``id`` (0 when the request id was unreadable)."""

    code: ErrorCode
    message: str
    retry_after: float | None = None
    details: dict[str, object] | None = None


class Ok(Reply):
    """A reply that carries nothing but success."""


class Capabilities(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """What the server offers and the limits a client must respect."""

    server_name: str
    embedder: str
    embedder_version: str
    max_message_bytes: int
    max_upload_bytes: int
    max_pixels: int
    upload_chunk_bytes: int
    batch_default: int
    batch_max: int
    currency: str
    #: Image search: ``off`` (no model), ``warming`` (answers ``unavailable`` with a
    #: retry-after until ready), ``ready`` or ``failed``.
    vision: str = "off"


Hex128 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]


class Hello(Request):
    """The first request on a connection: versions and the client's stable instance id.

    ``client_id`` stays the same across reconnects of one client session, so the server can
    deduplicate a request that is retried after a drop.
    """

    version: int
    client_id: Hex128
    client_name: Annotated[str, msgspec.Meta(max_length=64)] = ""


class Welcome(Reply):
    """The server's answer to :class:`Hello`."""

    version: int
    capabilities: Capabilities


class Notice(Event):
    """A connection notice from the server, e.g. that it is shutting down."""

    kind: str
    message: str


MESSAGES: tuple[type[Message], ...] = (ErrorReply, Ok, Hello, Welcome, Notice)
