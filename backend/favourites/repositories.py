"""Provides the favourites repository for whichever storage engine is open."""

from __future__ import annotations

from backend.favourites.postgres_repository import PostgresFavouritesRepository
from backend.favourites.repository import FavouritesRepository
from backend.favourites.sqlite_repository import SqliteFavouritesRepository
from backend.storage.database import Database
from backend.storage.engine import StorageEngine


def favourites_repository(db: StorageEngine) -> FavouritesRepository:
    """The favourites of ``db``."""
    if isinstance(db, Database):
        return SqliteFavouritesRepository(db)
    return PostgresFavouritesRepository(db)
