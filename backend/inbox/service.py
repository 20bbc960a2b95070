"""Provides :class:`InboxService`: each user's stored inbox, and the delivery of notices to it.

Other domains deliver notices through :meth:`InboxService.deliver` (one user) or
:meth:`InboxService.deliver_to` (many users, one transaction): the notice is stored, each inbox
is kept to its newest :data:`MAX_NOTICES`, and the user's open sessions, on this instance and
on every other one of the shop, hear the new unread count and the notice at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from backend.events import EventHub
from backend.id_pages import IdPages, SecretSource
from backend.inbox.live import announce_inbox
from backend.inbox.notices import Delivered, NewNotice, StoredNotice
from backend.inbox.repository import InboxRepository
from protocol.messages.inbox import Notice

#: Notices one inbox keeps; delivering more drops the oldest.
MAX_NOTICES: Final = 500
#: The cursor scope of inbox listings (see :func:`~backend.catalogue.cursors.cursor_binding`).
INBOX_SCOPE: Final = "inbox.notices"

#: The server clock, in seconds since the epoch.
Clock = Callable[[], float]


class InboxService:
    """Deliver notices to users' inboxes; list, count, mark read and clear one's own.

    Every method but the deliveries acts on the inbox of the ``user_id`` it is given: handlers
    pass the caller's own id, never one from a request, so nobody reaches another's inbox.

    Args:
        repository: Where inboxes are stored.
        events: Where the users' connections hear of changes.
        secret: Reads the cursor secret, once, before the first listing.
        batch_default: Notices per batch when the client does not say.
        batch_max: The most notices a client may ask for in one batch.
        max_notices: Notices one inbox keeps.
        clock: The server clock.
    """

    def __init__(
        self,
        repository: InboxRepository,
        events: EventHub,
        secret: SecretSource,
        *,
        batch_default: int,
        batch_max: int,
        max_notices: int = MAX_NOTICES,
        clock: Clock = time.time,
    ) -> None:
        self._repository = repository
        self._events = events
        self._pages: IdPages[StoredNotice] = IdPages(
            INBOX_SCOPE, secret, batch_default=batch_default, batch_max=batch_max
        )
        self._max_notices = max_notices
        self._clock = clock

    async def deliver(self, user_id: int, notice: NewNotice) -> bool:
        """Store ``notice`` in the user's inbox and tell the user's open sessions at once.

        A notice about an item (``notice.item_id``) is delivered only if the user may see that
        item now (public, theirs, or they are an admin); later listings check again, and show a
        notice whose item has since turned private or been deleted without its text.

        Returns:
            Whether it was delivered (``False``: no such user, or they may not see the item).
        """
        return bool(await self.deliver_to([user_id], notice))

    async def deliver_to(self, user_ids: Iterable[int], notice: NewNotice) -> list[int]:
        """Deliver one notice to many inboxes in one transaction, as :meth:`deliver` does.

        Returns:
            The users it was delivered to.
        """
        users = list(dict.fromkeys(user_ids))
        if not users:
            return []
        delivered = await self._repository.add(
            users, notice, now=self._clock(), keep=self._max_notices
        )
        for entry in delivered:
            self._announce(entry)
        return [entry.notice.user_id for entry in delivered]

    @property
    def keep(self) -> int:
        """Notices one inbox keeps (for deliverers that store notices themselves)."""
        return self._max_notices

    def announce(self, delivered: Iterable[Delivered]) -> None:
        """Tell the users' sessions of notices a deliverer stored in a transaction of its own
        (``add_notices`` of the engine's inbox repository); call it after that commit."""
        for entry in delivered:
            self._announce(entry)

    def _announce(self, entry: Delivered) -> None:
        # After the commit: nobody hears of a notice that a rollback could take back.
        announce_inbox(self._events, entry.notice.user_id, entry.unread, entry.notice)

    async def notices(
        self, user_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Notice], str | None, int]:
        """A batch of the user's notices, newest first, the next batch's cursor and the unread
        count.

        Raises:
            BadRequest: ``limit`` is above the maximum, or the cursor is not one of this
                user's inbox listings.
        """

        async def fetch(below: int | None, size: int) -> list[StoredNotice]:
            return await self._repository.notices(user_id, below=below, limit=size)

        rows, next_cursor = await self._pages.batch(user_id, fetch, limit=limit, cursor=cursor)
        unread = await self._repository.unread(user_id)
        return [row.view() for row in rows], next_cursor, unread

    async def unread(self, user_id: int) -> int:
        """How many of the user's notices are unread."""
        return await self._repository.unread(user_id)

    async def mark_read(self, user_id: int, notice_ids: Sequence[int] | None) -> int:
        """Mark the user's notices ``notice_ids`` (``None``: all) read; return the unread count.

        Ids that are not the user's notices are ignored. The user's sessions hear the count.
        """
        unread = await self._repository.mark_read(user_id, notice_ids)
        announce_inbox(self._events, user_id, unread)
        return unread

    async def clear(self, user_id: int) -> None:
        """Delete every notice of the user's inbox; the user's sessions hear of it."""
        await self._repository.clear(user_id)
        announce_inbox(self._events, user_id, 0)
