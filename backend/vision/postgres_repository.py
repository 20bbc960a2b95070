"""Provides the PostgreSQL implementation of the vision repositories, on pgvector.

Embeddings are ``halfvec`` rows with an HNSW index (see the p0003 migration), and the database
ranks: a search is one query that joins the items, so visibility (public, or the viewer's own)
and any id prefilter are applied inside the index scan rather than to its results. Nothing is
held in process memory, so every server instance sharing the database sees an upload or a
deletion at once, and the catalogue's hooks have nothing to do here.

How a search ranks:

* HNSW is approximate. It proposes candidates nearest first (``hnsw.iterative_scan =
  relaxed_order`` lets it go on past ``hnsw.ef_search`` until enough candidates pass the
  filters, instead of starving), and each candidate is scored exactly, in float32, from its
  stored vector. The batch is the best ``k`` of those scores, ordered by (score descending, item
  id ascending) like the SQLite engine's exact index.
* The keyset cursor compares those exact scores, inside the scan: a later batch skips what
  earlier batches returned however far down the ranking it is, and a score is computed the same
  way every time, so batches never repeat an item.
* A small prefilter (a rare tag) is ranked exactly without the index: an HNSW scan would have to
  walk most of the graph to find its few items. A large one (a price range of a big shop) goes
  to the index scan as a bitmap of item ids: tested in constant time per candidate, where an id
  array is searched element by element once the statement's plan is cached (1.6 s for 10,000
  ids), or costs planning time per element when it is not (2 s for 500,000 ids).

Vectors travel as ``real[]`` (asyncpg encodes float arrays natively) and are cast by pgvector's
own casts; pgvector's asyncpg codecs would need registering on every pooled connection before
the pool opens, which is before the domains (and so this module) are built.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import asyncpg
import numpy as np
from numpy.typing import NDArray

from backend.storage.postgres import PostgresDatabase
from backend.vision.index import DEFAULT_DIM, Hit, as_unit_query
from backend.vision.repository import ItemSuggestions, PictureLabels, Suggestion
from backend.vision.stored import encode_suggestions, half_precision, item_suggestions

#: Candidates the HNSW scan proposes per hit wanted, and at least; each is scored exactly.
#: 200 gave recall@24 of 0.98 on random unit vectors (the hardest case for HNSW) and 1.0 on
#: clustered ones; ``tests/contract/test_vision_repository.py`` measures it.
_CANDIDATES_PER_HIT: Final = 4
_MIN_CANDIDATES: Final = 200
#: pgvector's largest ``hnsw.ef_search``.
_MAX_EF_SEARCH: Final = 1000
#: Prefilters of at most this many items are ranked exactly (about 5 µs an item); larger ones
#: through the index (about 50 µs a candidate it proposes, of which the prefilter keeps its
#: share), whose iterative scan then finds enough of them within its default 20,000-tuple budget
#: up to a million items.
_EXACT_PREFILTER: Final = 10_000

# The query vector once as float32 (exact scores) and once as halfvec (the index's order).
_QUERY = "WITH query AS (SELECT $1::real[]::vector AS exact, $1::real[]::halfvec AS approx)"
# Inner product of unit vectors: the SQLite index's score, computed from the stored float16.
_SCORE = "-(e.vector::vector <#> (SELECT exact FROM query))"
# Strictly after the cursor ($4, $5) in (score descending, id ascending) order.
_AFTER = "score < $4 OR (score = $4 AND id > $5)"
_VISIBLE = "e.model_version = $2 AND (i.public OR i.owner_id = $3)"

# $6 candidates, $7 hits, $8 optional prefilter (see _id_bitmap). OFFSET 0 keeps the planner
# from pushing the cursor test into the scan, so each candidate's score is computed once, in the
# inner list.
_NEAREST_SQL = f"""
{_QUERY}
SELECT id, score FROM (
    SELECT id, score FROM (
        SELECT i.id, {_SCORE} AS score
        FROM embeddings e JOIN items i ON i.sha256 = e.sha256
        WHERE {_VISIBLE} {{among}}
        ORDER BY e.vector <=> (SELECT approx FROM query)
        OFFSET 0
    ) nearest
    WHERE {_AFTER}
    LIMIT $6
) candidates
ORDER BY score DESC, id
LIMIT $7
"""
_NEAREST = _NEAREST_SQL.format(among="")
_NEAREST_AMONG = _NEAREST_SQL.format(
    # CASE, because AND does not promise to test the length before get_bit's range check.
    among="AND CASE WHEN i.id < 8 * octet_length($8::bytea)"
    " THEN get_bit($8::bytea, i.id) = 1 ELSE false END"
)

# $6 the prefilter, $7 hits.
_EXACT = f"""
{_QUERY}
SELECT id, score FROM (
    SELECT i.id, {_SCORE} AS score
    FROM items i JOIN embeddings e ON e.sha256 = i.sha256
    WHERE i.id = ANY($6::bigint[]) AND {_VISIBLE}
    OFFSET 0
) scored
WHERE {_AFTER}
ORDER BY score DESC, id
LIMIT $7
"""


def _as_array(vector: NDArray[np.floating]) -> list[float]:
    return np.asarray(vector, dtype=np.float32).reshape(-1).tolist()


def _from_array(values: Sequence[float]) -> NDArray[np.float32]:
    return np.asarray(values, dtype=np.float32)


def _id_bitmap(item_ids: Sequence[int]) -> bytes:
    """``item_ids`` as a bit string whose bit ``n`` is set for id ``n``, as ``get_bit`` reads it.

    ``get_bit`` numbers bits from the least significant bit of the first byte. A million ids
    take 125 kB.
    """
    ids = np.asarray(item_ids, dtype=np.int64)
    members = np.zeros(int(ids.max()) + 1, np.bool_)
    members[ids] = True
    return np.packbits(members, bitorder="little").tobytes()


class PostgresEmbeddingRepository:
    """The ``embeddings`` table of a PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
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
        try:
            async with self._db.transaction() as conn:
                status: str = await conn.execute(
                    "INSERT INTO embeddings"
                    " (sha256, model_version, vector, suggestions, created_at, labels_version)"
                    " SELECT sha256, $2, $3::real[]::halfvec, $4, $5, $6"
                    " FROM pictures WHERE sha256 = $1"
                    " ON CONFLICT (sha256) DO UPDATE SET"
                    " model_version = excluded.model_version, vector = excluded.vector,"
                    " suggestions = excluded.suggestions, created_at = excluded.created_at,"
                    " labels_version = excluded.labels_version",
                    sha256,
                    model_version,
                    # Rounded here as SQLite's blob is, so that both engines hold the same values.
                    _as_array(half_precision(vector)),
                    encode_suggestions(suggestions),
                    time.time(),
                    labels.version,
                )
                if status.rsplit(" ", 1)[-1] == "0":  # "INSERT 0 <rows>": the picture is gone
                    return False
                # The embedding's row lock, taken above, serialises rewrites of these rows.
                await conn.execute("DELETE FROM picture_classes WHERE sha256 = $1", sha256)
                await conn.execute(
                    "INSERT INTO picture_classes (sha256, class_id, probability)"
                    " SELECT $1::text, * FROM unnest($2::int[], $3::float8[])",
                    sha256,
                    [seen.class_id for seen in labels.classes],
                    [seen.probability for seen in labels.classes],
                )
        except asyncpg.ForeignKeyViolationError:
            # Deleted by another transaction between the SELECT and the insert's key check.
            return False
        return True

    async def vector(self, sha256: str, model_version: str) -> NDArray[np.float32] | None:
        values = await self._db.fetchval(
            "SELECT vector::real[] FROM embeddings WHERE sha256 = $1 AND model_version = $2",
            sha256,
            model_version,
        )
        return None if values is None else _from_array(values)

    async def unembedded(self, model_version: str, labels_version: int) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT DISTINCT i.sha256 FROM items i LEFT JOIN embeddings e"
            " ON e.sha256 = i.sha256 AND e.model_version = $1 AND e.labels_version >= $2"
            " WHERE e.sha256 IS NULL ORDER BY i.sha256",
            model_version,
            labels_version,
        )
        return [str(row[0]) for row in rows]

    async def item_suggestions(self, item_id: int) -> ItemSuggestions | None:
        row = await self._db.fetchone(
            "SELECT i.owner_id, e.suggestions,"
            " ARRAY(SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id"
            "       WHERE it.item_id = i.id) AS tags"
            " FROM items i LEFT JOIN embeddings e ON e.sha256 = i.sha256 WHERE i.id = $1",
            item_id,
        )
        return None if row is None else item_suggestions(row[0], row[1], row[2])


class PgvectorSimilarityIndex:
    """Ranks with pgvector in the database (see the module's description)."""

    def __init__(self, db: PostgresDatabase, model_version: str) -> None:
        """Search the embeddings that ``model_version`` made in ``db``."""
        self._db = db
        self._model_version = model_version

    async def load(self) -> int:
        """Nothing to load: return how many items are searchable."""
        count = await self._db.fetchval(
            "SELECT count(*) FROM items i JOIN embeddings e ON e.sha256 = i.sha256"
            " WHERE e.model_version = $1",
            self._model_version,
        )
        return int(count)

    async def search(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        viewer_id: int | None,
        after: tuple[float, int] | None = None,
        among: Sequence[int] | None = None,
    ) -> list[Hit]:
        """Rank in the database: exactly for a small prefilter, else by HNSW (see the module)."""
        if k <= 0 or (among is not None and len(among) == 0):
            return []
        # Normalised as the SQLite index does, with the same ValueError for an unusable query.
        vector = _as_array(as_unit_query(query, DEFAULT_DIM))
        score_after, id_after = (float("inf"), 0) if after is None else after
        args = (vector, self._model_version, viewer_id, float(score_after), int(id_after))
        if among is not None and len(among) <= _EXACT_PREFILTER:
            rows = await self._db.fetchall(_EXACT, *args, list(among), k)
        else:
            candidates = max(_MIN_CANDIDATES, _CANDIDATES_PER_HIT * k)
            async with self._db.transaction() as conn:
                # SET LOCAL: only this transaction's scan. With sorting off the planner takes
                # the HNSW order rather than scoring every row and sorting: pgvector's distance
                # functions are costed like cheap operators, so below some tens of thousands
                # of rows it thinks a full scan cheaper, where it takes 5 µs a row.
                await conn.execute(
                    "SET LOCAL hnsw.iterative_scan = relaxed_order;"
                    f" SET LOCAL hnsw.ef_search = {min(candidates, _MAX_EF_SEARCH)};"
                    " SET LOCAL enable_sort = off"
                )
                if among is None:
                    rows = await conn.fetch(_NEAREST, *args, candidates, k)
                else:
                    bitmap = _id_bitmap(among)
                    rows = await conn.fetch(_NEAREST_AMONG, *args, candidates, k, bitmap)
        return [Hit(int(row[0]), float(row[1])) for row in rows]

    async def count_visible(self, viewer_id: int | None) -> int:
        count = await self._db.fetchval(
            "SELECT count(*) FROM items i JOIN embeddings e ON e.sha256 = i.sha256"
            " WHERE e.model_version = $1 AND (i.public OR i.owner_id = $2)",
            self._model_version,
            viewer_id,
        )
        return int(count)

    async def vector_of(self, item_id: int) -> NDArray[np.float32] | None:
        values = await self._db.fetchval(
            "SELECT e.vector::real[] FROM items i JOIN embeddings e ON e.sha256 = i.sha256"
            " WHERE i.id = $1 AND e.model_version = $2",
            item_id,
            self._model_version,
        )
        return None if values is None else _from_array(values)

    async def picture_embedded(self, sha256: str, vector: NDArray[np.float32]) -> None:
        """Nothing to do: the stored embedding is searchable once committed."""

    async def items_deleted(self, item_ids: Sequence[int]) -> None:
        """Nothing to do: deleted items are gone from the search's join."""

    async def visibility_changed(self, item_id: int, public: bool) -> None:
        """Nothing to do: the search reads visibility from the items."""
