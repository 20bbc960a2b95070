"""Provides the alerts repository for whichever storage engine is open."""

from __future__ import annotations

from backend.alerts.postgres_repository import PostgresAlertRepository
from backend.alerts.repository import AlertRepository
from backend.alerts.sqlite_repository import SqliteAlertRepository
from backend.storage.database import Database
from backend.storage.engine import StorageEngine


def alert_repository(db: StorageEngine) -> AlertRepository:
    """The saved searches of ``db``."""
    if isinstance(db, Database):
        return SqliteAlertRepository(db)
    return PostgresAlertRepository(db)
