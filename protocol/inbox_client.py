"""Provides the inbox calls over a :class:`~protocol.client.Session`.

The TUI, the scripting CLI and the tests read and tend the inbox through these helpers. Listing
the inbox or asking for its unread count also subscribes the session to
:class:`~protocol.messages.inbox.InboxChanged` events until it reconnects (ask again then).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from protocol.client import Session
from protocol.messages.inbox import (
    ClearInbox,
    GetUnreadCount,
    InboxBatch,
    ListInbox,
    MarkNoticesRead,
    Notice,
    UnreadCount,
)
from protocol.paging import paginate


async def inbox_batch(
    session: Session, *, limit: int | None = None, cursor: str | None = None
) -> InboxBatch:
    """One batch of the caller's notices, newest first, with the unread count."""
    return await session.request(ListInbox(limit=limit, cursor=cursor), InboxBatch)


async def iter_inbox(session: Session, *, limit: int | None = None) -> AsyncIterator[Notice]:
    """Every notice of the caller, newest first, fetched a batch at a time as consumed."""

    async def fetch(size: int | None, cursor: str | None) -> tuple[list[Notice], str | None]:
        batch = await inbox_batch(session, limit=size, cursor=cursor)
        return batch.notices, batch.cursor

    async for notice in paginate(fetch, batch=limit):
        yield notice


async def unread_count(session: Session) -> int:
    """How many of the caller's notices are unread."""
    return (await session.request(GetUnreadCount(), UnreadCount)).unread


async def mark_read(session: Session, notice_ids: Sequence[int]) -> int:
    """Mark these notices read (others' ids are ignored); returns the unread count."""
    request = MarkNoticesRead(notice_ids=list(notice_ids))
    return (await session.request(request, UnreadCount)).unread


async def mark_all_read(session: Session) -> int:
    """Mark every notice read; returns the unread count (0)."""
    return (await session.request(MarkNoticesRead(all=True), UnreadCount)).unread


async def clear_inbox(session: Session) -> None:
    """Delete every notice of the caller's inbox."""
    await session.request(ClearInbox(), UnreadCount)
