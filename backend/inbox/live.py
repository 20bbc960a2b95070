"""Provides the live side of the inbox: telling a user's connections that their inbox changed.

A connection that lists the inbox or asks for its unread count is subscribed to the user's
``inbox:<id>`` topic until it closes. Every change (a notice delivered, notices read, the inbox
cleared) is told there at once as :class:`~protocol.messages.inbox.InboxChanged`, and shared with
the other instances as the user's id and the new notice's id only: an instance with connections
of that user reads the notice and the count from the database and tells them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from backend.connection import Connection
from backend.eventbus import EventBus, Fact
from backend.events import EventHub
from backend.inbox.notices import StoredNotice
from protocol.messages.inbox import InboxChanged, Notice

log = logging.getLogger(__name__)

#: Notices of one user from other instances waiting to be told here, at most.
MAX_WAITING = 100


class InboxChangedFact(Fact, frozen=True, kw_only=True):
    """A user's inbox changed: ``notice_id`` was delivered (``None``: read or cleared)."""

    user_id: int
    notice_id: int | None = None


def inbox_topic(user_id: int) -> str:
    """The topic of one user's connections that show the inbox or its count."""
    return f"inbox:{user_id}"


def watch_inbox(events: EventHub, connection: Connection) -> None:
    """Tell ``connection`` of every change to its user's inbox from now on."""
    principal = connection.principal
    if principal is not None:
        events.subscribe(connection, inbox_topic(principal.user_id))


def tell_inbox(events: EventHub, user_id: int, unread: int, notice: Notice | None) -> None:
    """Tell this instance's connections of ``user_id`` that their inbox changed."""

    def audience(connection: Connection) -> bool:
        # A connection that logged in as someone else since it subscribed must not hear it.
        return connection.user_id == user_id

    events.publish(inbox_topic(user_id), InboxChanged(unread=unread, notice=notice), audience)


def announce_inbox(
    events: EventHub, user_id: int, unread: int, notice: StoredNotice | None = None
) -> None:
    """Tell the user's connections here, and the other instances, that the inbox changed."""
    tell_inbox(events, user_id, unread, notice.view() if notice is not None else None)
    events.share(InboxChangedFact(user_id=user_id, notice_id=notice.id if notice else None))


#: Reads a notice by id (``None`` once gone).
LoadNotice = Callable[[int], Awaitable[StoredNotice | None]]
#: Reads a user's unread count.
LoadUnread = Callable[[int], Awaitable[int]]


class InboxRefresher:
    """Tells this instance's connections of inbox changes made on other instances.

    At most one load per user runs at a time; the facts that arrive meanwhile are taken by the
    next round, which reads the count once, so the count told last is never older than the
    last fact, and every delivered notice is told.
    """

    def __init__(self, events: EventHub, notice: LoadNotice, unread: LoadUnread) -> None:
        self._events = events
        self._notice = notice
        self._unread = unread
        self._waiting: dict[int, list[int | None]] = {}
        self._running: dict[int, asyncio.Task[None]] = {}

    def listen(self, bus: EventBus) -> None:
        """Take the inbox facts of other instances from ``bus``."""
        bus.on(InboxChangedFact, self.receive)

    def receive(self, fact: InboxChangedFact) -> None:
        """Load and tell the change, if any connection here shows that user's inbox."""
        user_id = fact.user_id
        if user_id not in self._running and not self._events.has_subscribers(inbox_topic(user_id)):
            return
        waiting = self._waiting.setdefault(user_id, [])
        if len(waiting) < MAX_WAITING:
            waiting.append(fact.notice_id)
        elif None not in waiting:
            # A flood for one user: beyond the bound only the count is told (the inbox screen
            # loads the notices afresh when it sees a count it did not expect).
            waiting.append(None)
        if user_id not in self._running:
            self._running[user_id] = asyncio.create_task(
                self._refresh(user_id), name=f"pixmart-inbox-refresh-{user_id}"
            )

    async def _refresh(self, user_id: int) -> None:
        try:
            while waiting := self._waiting.pop(user_id, None):
                notices = [await self._notice(i) for i in dict.fromkeys(waiting) if i is not None]
                unread = await self._unread(user_id)
                views: list[Notice | None] = [n.view() for n in notices if n is not None]
                for view in views or [None]:
                    tell_inbox(self._events, user_id, unread, view)
        except Exception:  # the user's devices see the inbox at their next request
            log.exception("loading an inbox changed on another instance failed")
        finally:
            self._running.pop(user_id, None)
            self._waiting.pop(user_id, None)

    async def close(self) -> None:
        """Cancel the loads under way."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
