"""Provides the request handlers of the inbox: list, unread count, mark read and clear.

Every handler acts on the caller's own inbox (the session's user), never on one a request names.
"""

from __future__ import annotations

from backend.connection import Connection
from backend.dispatch import Dispatcher
from backend.events import EventHub
from backend.inbox.live import watch_inbox
from backend.inbox.service import InboxService
from protocol.messages.base import Reply
from protocol.messages.inbox import (
    ClearInbox,
    GetUnreadCount,
    InboxBatch,
    ListInbox,
    MarkNoticesRead,
    UnreadCount,
)


def register(dispatcher: Dispatcher, inbox: InboxService, events: EventHub) -> None:
    """Register the inbox handlers."""

    async def watch(connection: Connection, _reply: Reply) -> None:
        # After the reply, replayed ones too: a request retried on a new connection subscribes it.
        watch_inbox(events, connection)

    @dispatcher.route(ListInbox, replayable=False, after=watch)
    async def list_inbox(connection: Connection, request: ListInbox) -> Reply:
        notices, cursor, unread = await inbox.notices(
            connection.require_user().user_id, limit=request.limit, cursor=request.cursor
        )
        return InboxBatch(id=request.id, notices=notices, cursor=cursor, unread=unread)

    @dispatcher.route(GetUnreadCount, replayable=False, after=watch)
    async def unread_count(connection: Connection, request: GetUnreadCount) -> Reply:
        unread = await inbox.unread(connection.require_user().user_id)
        return UnreadCount(id=request.id, unread=unread)

    @dispatcher.route(MarkNoticesRead)
    async def mark_read(connection: Connection, request: MarkNoticesRead) -> Reply:
        user_id = connection.require_user().user_id
        unread = await inbox.mark_read(user_id, None if request.all else request.notice_ids)
        return UnreadCount(id=request.id, unread=unread)

    @dispatcher.route(ClearInbox)
    async def clear(connection: Connection, request: ClearInbox) -> Reply:
        await inbox.clear(connection.require_user().user_id)
        return UnreadCount(id=request.id, unread=0)
