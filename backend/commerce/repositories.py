"""Provides the commerce repository for whichever storage engine is open."""

from __future__ import annotations

from backend.commerce.postgres_repository import PostgresCommerceRepository
from backend.commerce.repository import CommerceRepository
from backend.commerce.sqlite_repository import SqliteCommerceRepository
from backend.storage.database import Database
from backend.storage.engine import StorageEngine


def commerce_repository(db: StorageEngine) -> CommerceRepository:
    """The carts, checkout and orders of ``db``."""
    if isinstance(db, Database):
        return SqliteCommerceRepository(db)
    return PostgresCommerceRepository(db)
