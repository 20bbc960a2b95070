"""Provides what the inbox service asks of storage: notices stored, listed, read and cleared.

The implementations (``sqlite_repository``, ``postgres_repository``) give the same answers; the
contract suite ``tests/contract/test_inbox_repository.py`` holds them to that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from backend.inbox.notices import Delivered, NewNotice, StoredNotice


class InboxRepository(Protocol):
    """Users' inboxes, each kept to its newest notices."""

    async def add(
        self, user_ids: Sequence[int], notice: NewNotice, *, now: float, keep: int
    ) -> list[Delivered]:
        """Store ``notice`` in the inbox of each of ``user_ids`` who may see its item now.

        In one transaction: the notice is stored for every listed user that exists and may see
        ``notice.item_id`` (anyone, for a notice about no item), each inbox then loses its
        notices beyond the newest ``keep``, and the unread counts are read back.

        Returns:
            One entry per inbox the notice went to, in no particular order.
        """

    async def notices(self, user_id: int, *, below: int | None, limit: int) -> list[StoredNotice]:
        """Up to ``limit`` of the user's notices with ids below ``below`` (``None``: from the
        newest), newest first, each with its item's visibility to the user as it is now."""

    async def notice(self, notice_id: int) -> StoredNotice | None:
        """One notice as :meth:`notices` reads it, or ``None`` if it no longer exists."""

    async def unread(self, user_id: int) -> int:
        """How many of the user's notices are unread."""

    async def mark_read(self, user_id: int, notice_ids: Sequence[int] | None) -> int:
        """Mark the user's notices ``notice_ids`` (``None``: all) read; return the unread
        count after. Ids of other users' notices are left alone."""

    async def clear(self, user_id: int) -> None:
        """Delete every notice of the user."""
