"""Provides the inbox messages: each user's stored notices, their unread count and its event.

The inbox lives on the server, one per user, so notices wait across reconnects, restarts and
devices. It is listed newest first in batches like every list. Every change to it (a notice
delivered, notices marked read, the inbox cleared) is told live to the user's connections that
asked for the inbox or its count, as :class:`InboxChanged` with the new unread count.

A notice never reveals a picture its reader may not see: visibility is checked again each time
it is listed, and a notice about an item that has since been deleted or turned private to the
reader comes with ``item_status`` saying so and a neutral text instead of its own.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from protocol.messages.base import Event, Message, Reply, Request
from protocol.messages.catalogue import BatchLimit, Cursor

NoticeId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
#: Notices one mark-read request may name at most.
MAX_MARK_IDS = 1000


class NoticeKind(enum.StrEnum):
    """What a notice is about."""

    #: A favourite's price dropped.
    PRICE_DROP = "price_drop"
    #: A favourite that was sold out has stock again.
    BACK_IN_STOCK = "back_in_stock"
    #: A favourite was deleted or turned private.
    FAVOURITE_GONE = "favourite_gone"
    #: An item matched one of the user's saved searches.
    ALERT_MATCH = "alert_match"


class NoticeItemStatus(enum.StrEnum):
    """What became of the item a notice is about, as its reader may know it now."""

    #: The reader may see the item.
    AVAILABLE = "available"
    #: The item turned private (to this reader); nothing more is said about it.
    PRIVATE = "private"
    #: The item was deleted.
    DELETED = "deleted"


class Notice(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One notice in a user's inbox.

    Attributes:
        id: The notice; ids grow with time.
        kind: What it is about.
        item_id: The item it concerns, if any.
        text: A short text for people; a neutral one when the item is no longer available.
        created_at: When it was delivered (server clock, seconds since the epoch).
        read: Whether the user marked it read.
        item_status: What became of the item (``None`` for a notice about no item).
    """

    id: int
    kind: NoticeKind
    text: str
    created_at: float
    read: bool = False
    item_id: int | None = None
    item_status: NoticeItemStatus | None = None


class ListInbox(Request):
    """The caller's notices, newest first; send again with ``cursor`` for the next batch.

    The connection then hears :class:`InboxChanged` whenever the inbox changes.
    """

    limit: BatchLimit | None = None
    cursor: Cursor | None = None


class InboxBatch(Reply):
    """One batch of notices (``cursor`` is ``None`` after the last) and the unread count."""

    notices: list[Notice]
    unread: int
    cursor: str | None = None


class GetUnreadCount(Request):
    """How many of the caller's notices are unread; the connection then hears
    :class:`InboxChanged` whenever the inbox changes."""


class UnreadCount(Reply):
    """The caller's unread notices (the reply of every inbox request but a listing)."""

    unread: int


class MarkNoticesRead(Request):
    """Mark the caller's notices ``notice_ids`` read, or every one with ``all``.

    Ids that are not the caller's notices (or no longer exist) are ignored.
    """

    notice_ids: Annotated[list[NoticeId], msgspec.Meta(max_length=MAX_MARK_IDS)] = msgspec.field(
        default_factory=list
    )
    all: bool = False


class ClearInbox(Request):
    """Delete every notice of the caller's inbox."""


class InboxChanged(Event):
    """The receiver's inbox changed: ``notice`` was delivered (``None`` for other changes:
    notices read or cleared, possibly on another device)."""

    unread: int
    notice: Notice | None = None


MESSAGES: tuple[type[Message], ...] = (
    ListInbox,
    InboxBatch,
    GetUnreadCount,
    UnreadCount,
    MarkNoticesRead,
    ClearInbox,
    InboxChanged,
)
