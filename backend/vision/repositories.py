"""Provides the vision repositories for whichever storage engine is open."""

from __future__ import annotations

from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.vision.postgres_repository import PgvectorSimilarityIndex, PostgresEmbeddingRepository
from backend.vision.repository import EmbeddingRepository, SimilarityIndex
from backend.vision.sqlite_repository import InMemorySimilarityIndex, SqliteEmbeddingRepository


def embedding_repository(db: StorageEngine) -> EmbeddingRepository:
    """The picture embeddings of ``db``."""
    if isinstance(db, Database):
        return SqliteEmbeddingRepository(db)
    return PostgresEmbeddingRepository(db)


def similarity_index(db: StorageEngine, model_version: str) -> SimilarityIndex:
    """Similar-image search over the items of ``db`` embedded by ``model_version``.

    SQLite's ranks in this process's memory (load it before searching); PostgreSQL's in the
    database.
    """
    if isinstance(db, Database):
        return InMemorySimilarityIndex(db, model_version)
    return PgvectorSimilarityIndex(db, model_version)
