"""Provides the inbox repository for whichever storage engine is open."""

from __future__ import annotations

from backend.inbox.postgres_repository import PostgresInboxRepository
from backend.inbox.repository import InboxRepository
from backend.inbox.sqlite_repository import SqliteInboxRepository
from backend.storage.database import Database
from backend.storage.engine import StorageEngine


def inbox_repository(db: StorageEngine) -> InboxRepository:
    """The inboxes of ``db``."""
    if isinstance(db, Database):
        return SqliteInboxRepository(db)
    return PostgresInboxRepository(db)
