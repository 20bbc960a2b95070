"""Provides the SQLite implementation of the vision repositories.

Embeddings live in the ``embeddings`` table as float16 blobs. Searching them in SQL would read
every row for every query, so the SQLite engine ranks in this process's memory instead: the
:class:`~backend.vision.index.VectorIndex`, loaded from the table at start and kept in step by
the catalogue's hooks. That is right for the one server process a SQLite shop has; shops with
several server processes use PostgreSQL, where the database ranks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from backend.storage.database import Database
from backend.vision.index import Hit, VectorIndex
from backend.vision.repository import ItemSuggestions, PictureLabels, Suggestion
from backend.vision.stored import encode_suggestions, item_suggestions

#: Embeddings read and indexed at a time when the server starts (about 21 MB of float16).
INDEX_LOAD_CHUNK: Final = 8192


def _to_blob(vector: NDArray[np.floating]) -> bytes:
    return np.asarray(vector).astype("<f2").tobytes()


def _from_blob(blob: bytes) -> NDArray[np.float32]:
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


class SqliteEmbeddingRepository:
    """The ``embeddings`` table of a SQLite database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def store(
        self,
        sha256: str,
        *,
        model_version: str,
        vector: NDArray[np.float32],
        suggestions: Sequence[Suggestion],
        labels: PictureLabels,
    ) -> bool:
        # The single writer makes the existence check and the inserts one atomic step.
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO embeddings"
                " (sha256, model_version, vector, suggestions, created_at, labels_version)"
                " SELECT sha256, ?, ?, ?, ?, ? FROM pictures WHERE sha256 = ?"
                " ON CONFLICT (sha256) DO UPDATE SET"
                " model_version = excluded.model_version, vector = excluded.vector,"
                " suggestions = excluded.suggestions, created_at = excluded.created_at,"
                " labels_version = excluded.labels_version",
                (
                    model_version,
                    _to_blob(vector),
                    encode_suggestions(suggestions),
                    time.time(),
                    labels.version,
                    sha256,
                ),
            )
            stored = cursor.rowcount > 0
            await cursor.close()
            if stored:
                await conn.execute("DELETE FROM picture_classes WHERE sha256 = ?", (sha256,))
                await conn.executemany(
                    "INSERT INTO picture_classes (sha256, class_id, probability) VALUES (?, ?, ?)",
                    [(sha256, seen.class_id, seen.probability) for seen in labels.classes],
                )
        return stored

    async def vector(self, sha256: str, model_version: str) -> NDArray[np.float32] | None:
        row = await self._db.fetchone(
            "SELECT vector FROM embeddings WHERE sha256 = ? AND model_version = ?",
            (sha256, model_version),
        )
        return None if row is None else _from_blob(row[0])

    async def unembedded(self, model_version: str, labels_version: int) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT DISTINCT i.sha256 FROM items i LEFT JOIN embeddings e"
            " ON e.sha256 = i.sha256 AND e.model_version = ? AND e.labels_version >= ?"
            " WHERE e.sha256 IS NULL ORDER BY i.sha256",
            (model_version, labels_version),
        )
        return [str(row[0]) for row in rows]

    async def item_suggestions(self, item_id: int) -> ItemSuggestions | None:
        row = await self._db.fetchone(
            "SELECT i.owner_id, e.suggestions,"
            " (SELECT json_group_array(t.name) FROM item_tags it JOIN tags t ON t.id = it.tag_id"
            "  WHERE it.item_id = i.id)"
            " FROM items i LEFT JOIN embeddings e ON e.sha256 = i.sha256 WHERE i.id = ?",
            (item_id,),
        )
        return None if row is None else item_suggestions(row[0], row[1], json.loads(row[2]))


class InMemorySimilarityIndex:
    """Ranks in a :class:`VectorIndex` held in memory, loaded from a SQLite database.

    Searches run in a worker thread, so the event loop never waits on one; the hooks change the
    index on the event loop (microseconds, see :mod:`backend.vision.index`).
    """

    def __init__(self, db: Database, model_version: str, index: VectorIndex | None = None) -> None:
        """Wrap ``index`` (a new, empty one by default); :meth:`load` fills it.

        Args:
            db: Where the embeddings and the items are.
            model_version: Only embeddings by this model are searchable.
            index: The in-memory index to fill.
        """
        self._db = db
        self._model_version = model_version
        self._index = index if index is not None else VectorIndex()
        #: Items deleted or changed while the index loads, checked again once it has.
        self._touched_while_loading: set[int] | None = None

    async def load(self) -> int:
        """Read every item's embedding by the model into memory; return how many were read."""
        self._touched_while_loading = set()
        try:
            loaded = await self._load_rows()
        finally:
            touched, self._touched_while_loading = self._touched_while_loading, None
        await self._recheck(touched)
        return loaded

    async def _load_rows(self) -> int:
        """Add the embeddings to the index a chunk at a time.

        In chunks because a bulk add converts its rows to float32 twice: all 100,000 rows at once
        took the server's peak RSS from 1.3 to 2.3 GB (``tests/bench/bench_memory.py``).
        """
        with self._index.bulk_load():  # one build of the lists from every row, not one per chunk
            return await self._load_chunks()

    async def _load_chunks(self) -> int:
        """Read and add the rows in id order, :data:`INDEX_LOAD_CHUNK` at a time."""
        loaded = last_id = 0
        while True:
            # CROSS JOIN makes SQLite walk items by id and look each embedding up by key, so
            # every chunk reads only its own rows (a plain JOIN would sort all of them each time).
            rows = await self._db.fetchall(
                "SELECT i.id, i.owner_id, i.public, e.vector FROM items i"
                " CROSS JOIN embeddings e ON e.sha256 = i.sha256"
                " WHERE e.model_version = ? AND i.id > ? ORDER BY i.id LIMIT ?",
                (self._model_version, last_id, INDEX_LOAD_CHUNK),
            )
            if not rows:
                return loaded
            ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            owners = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
            public = np.fromiter((bool(row[2]) for row in rows), dtype=np.bool_, count=len(rows))
            vectors = np.frombuffer(b"".join(row[3] for row in rows), dtype="<f2").reshape(
                len(rows), -1
            )
            await asyncio.to_thread(self._index.add_many, ids, vectors, owners, public)
            loaded += len(rows)
            last_id = int(ids[-1])

    async def _recheck(self, touched: set[int]) -> None:
        """Correct the rows of items deleted or changed while the index was loading.

        A chunk read before such a change would otherwise put a deleted item, or an item's old
        visibility, into the index.
        """
        if not touched:
            return
        ids = sorted(touched)
        marks = ",".join("?" * len(ids))
        rows = await self._db.fetchall(
            f"SELECT id, public FROM items WHERE id IN ({marks})",  # noqa: S608 - only ?s
            ids,
        )
        public_of = {int(row[0]): bool(row[1]) for row in rows}
        for item_id in ids:
            if item_id not in public_of:
                self._index.remove(item_id)
            elif item_id in self._index:
                self._index.update(item_id, public=public_of[item_id])

    async def search(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        viewer_id: int | None,
        after: tuple[float, int] | None = None,
        among: Sequence[int] | None = None,
    ) -> list[Hit]:
        """Return up to ``k`` items most like ``query`` that the viewer may see, exactly."""
        allowed = None if among is None else np.asarray(among, dtype=np.int64)
        return await asyncio.to_thread(self._index.search, query, k, viewer_id, allowed, after)

    async def count_visible(self, viewer_id: int | None) -> int:
        """How many indexed items the viewer may see."""
        return self._index.count_visible(viewer_id)

    async def vector_of(self, item_id: int) -> NDArray[np.float32] | None:
        """The indexed vector of an item, or ``None`` if it is not indexed."""
        try:
            return self._index.vector(item_id)
        except KeyError:
            return None

    async def picture_embedded(self, sha256: str, vector: NDArray[np.float32]) -> None:
        """Index (or re-index) every item showing the picture with ``vector``."""
        rows = await self._db.fetchall(
            "SELECT id, owner_id, public FROM items WHERE sha256 = ?", (sha256,)
        )
        for row in rows:
            item_id, owner_id, public = int(row[0]), int(row[1]), bool(row[2])
            if item_id in self._index:
                self._index.update(item_id, vector=vector, owner_id=owner_id, public=public)
            else:
                self._index.add(item_id, vector, owner_id=owner_id, public=public)

    async def items_deleted(self, item_ids: Sequence[int]) -> None:
        """Remove deleted items from the index."""
        if self._touched_while_loading is not None:
            self._touched_while_loading.update(item_ids)
        for item_id in item_ids:
            self._index.remove(item_id)

    async def visibility_changed(self, item_id: int, public: bool) -> None:
        """Record an item's new visibility in the index."""
        if self._touched_while_loading is not None:
            self._touched_while_loading.add(item_id)
        if item_id in self._index:
            self._index.update(item_id, public=public)
