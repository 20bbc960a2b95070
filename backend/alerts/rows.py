"""Provides the conversions both engines share: vectors to bytes and rows to records."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from backend.alerts.repository import BacklogEntry, Match, PictureSearch, StoredSearch


def vector_bytes(vector: NDArray[np.float32]) -> bytes:
    """The stored form of an embedding: float16, little-endian (half the room of float32)."""
    return np.asarray(vector, dtype="<f2").tobytes()


def vector_from(data: bytes) -> NDArray[np.float32]:
    """An embedding back from :func:`vector_bytes`, L2-normalised again after the rounding."""
    vector = np.frombuffer(data, dtype="<f2").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _json_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def stored_search(row: Any) -> StoredSearch:
    """A row of ``saved_searches`` (id, user_id, filters, like_label, min_similarity,
    created_at)."""
    return StoredSearch(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        filters_json=_json_bytes(row["filters"]),
        like_label=row["like_label"],
        min_similarity=row["min_similarity"],
        created_at=float(row["created_at"]),
    )


def picture_search(row: Any) -> PictureSearch:
    """A row (id, like_vector, min_similarity) of a picture search."""
    return PictureSearch(
        id=int(row["id"]),
        vector=vector_from(bytes(row["like_vector"])),
        min_similarity=int(row["min_similarity"]),
    )


def match_of(row: Any) -> Match:
    """A row (id, user_id, filters, like_label) of a search an item newly matched."""
    return Match(
        search_id=int(row["id"]),
        user_id=int(row["user_id"]),
        filters_json=_json_bytes(row["filters"]),
        like_label=row["like_label"],
    )


def backlog_entry(row: Any) -> BacklogEntry:
    """A row (item_id, version, age, attempts) of the backlog."""
    return BacklogEntry(
        item_id=int(row["item_id"]),
        version=int(row["version"]),
        age=float(row["age"]),
        attempts=int(row["attempts"]),
    )
