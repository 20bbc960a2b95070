"""Provides the account and session repositories for whichever storage engine is open."""

from __future__ import annotations

from backend.accounts.postgres_repository import (
    PostgresAccountRepository,
    PostgresSessionRepository,
)
from backend.accounts.postgres_throttle import PostgresEventCounter
from backend.accounts.repository import AccountRepository, SessionRepository
from backend.accounts.shared_throttle import EventCounter
from backend.accounts.sqlite_repository import SqliteAccountRepository, SqliteSessionRepository
from backend.storage.database import Database
from backend.storage.engine import StorageEngine


def account_repository(db: StorageEngine) -> AccountRepository:
    """The users of ``db``."""
    if isinstance(db, Database):
        return SqliteAccountRepository(db)
    return PostgresAccountRepository(db)


def session_repository(db: StorageEngine) -> SessionRepository:
    """The login sessions of ``db``."""
    if isinstance(db, Database):
        return SqliteSessionRepository(db)
    return PostgresSessionRepository(db)


def event_counter(db: StorageEngine) -> EventCounter | None:
    """Where the login and sign-up limits are counted for every instance: the database on
    PostgreSQL; ``None`` on SQLite, whose single server counts them in memory.
    """
    if isinstance(db, Database):
        return None
    return PostgresEventCounter(db)
