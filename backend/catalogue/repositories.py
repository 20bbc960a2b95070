"""Provides the catalogue's repositories for a storage engine: SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from backend.atrest.derivatives import PLAIN, DerivativeCodec
from backend.catalogue.cursors import SECRET_BYTES, load_or_create_secret
from backend.catalogue.postgres_pictures import PostgresPictureRepository
from backend.catalogue.postgres_repository import PostgresCatalogueRepository
from backend.catalogue.postgres_uploads import PostgresUploadRepository
from backend.catalogue.repository import CatalogueRepository, PictureRepository, UploadRepository
from backend.catalogue.sqlite_pictures import SqlitePictureRepository
from backend.catalogue.sqlite_repository import SqliteCatalogueRepository
from backend.catalogue.sqlite_uploads import SqliteUploadRepository
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.shared_secrets import database_secret


def catalogue_repository(
    db: StorageEngine, derivatives: DerivativeCodec = PLAIN
) -> CatalogueRepository:
    """Items, tags and listings stored in ``db``, thumbnails and previews sealed by
    ``derivatives``."""
    if isinstance(db, Database):
        return SqliteCatalogueRepository(db, derivatives)
    return PostgresCatalogueRepository(db, derivatives)


def picture_repository(db: StorageEngine) -> PictureRepository:
    """The picture rows stored in ``db``."""
    if isinstance(db, Database):
        return SqlitePictureRepository(db)
    return PostgresPictureRepository(db)


def upload_repository(db: StorageEngine) -> UploadRepository:
    """The uploads in progress stored in ``db``."""
    if isinstance(db, Database):
        return SqliteUploadRepository(db)
    return PostgresUploadRepository(db)


async def cursor_secret(db: StorageEngine, name: str, file: Path) -> bytes:
    """The secret that signs the cursors called ``name``.

    A single SQLite server keeps it in ``file`` in its data dir (backed up with it); instances on
    one PostgreSQL database keep it in the database, so a cursor one issued opens on every other.
    """
    if isinstance(db, Database):
        return load_or_create_secret(file)
    return await database_secret(db, name, SECRET_BYTES)
