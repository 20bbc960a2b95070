"""Provides the PostgreSQL implementation of :class:`~backend.alerts.repository.AlertRepository`.

Several instances share the database, so nothing relies on one process: adding a search takes a
transaction-level advisory lock (saving searches is rare; one lock keeps every bound exact), and
the matching statement's ``INSERT ... ON CONFLICT DO NOTHING`` on the (search, item) key lets only
one of two instances matching the same item at once record (and so alert on) each pair.
"""

from __future__ import annotations

from typing import Final

from backend.alerts.repository import (
    ItemFacts,
    ItemProbe,
    Match,
    PictureSearch,
    SearchDraft,
    SearchLimits,
    StoredSearch,
    check_limits,
)
from backend.alerts.rows import picture_search, stored_search, vector_bytes
from backend.storage.postgres import PostgresDatabase, job_lock_key

_COLUMNS: Final = "id, user_id, filters, like_label, min_similarity, created_at"

#: Serialises the adding of saved searches across instances, for the bounds.
_ADD_LOCK: Final = job_lock_key("alerts.add-search")

_COUNTS_SQL: Final = """
SELECT (SELECT count(*) FROM saved_searches WHERE user_id = $1) AS mine,
       (SELECT count(*) FROM saved_searches) AS total,
       (SELECT count(*) FROM saved_searches WHERE like_vector IS NOT NULL) AS pictures
"""

_INSERT_SQL: Final = f"""
INSERT INTO saved_searches (user_id, filters, owner_id, min_price_cents, max_price_cents,
    in_stock, tag_count, word_count, like_label, like_vector, like_model, min_similarity,
    created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING {_COLUMNS}
"""

_ITEM_SQL: Final = """
SELECT i.id, i.owner_id, i.public, i.title, i.description, i.price_cents, i.stock,
       ARRAY(SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id
             WHERE it.item_id = i.id ORDER BY t.name) AS tags
FROM items i WHERE i.id = $1
"""

# As the SQLite statement: candidates from the indexes only, each checked whole, the pair
# recorded; the insert's RETURNING names the new pairs only. Each candidate comes with how many
# of its tags and tokens the item has, and its row is then read by its key (the LATERAL ...
# LIMIT 1 keeps it a lookup per candidate: without statistics on a freshly filled table the
# planner chose a scan of every search joined against the candidates, 80 ms instead of 2).
_MATCH_SQL: Final = """
WITH
candidates AS (
    SELECT id, sum(tag) AS tags, sum(word) AS words
    FROM (
        SELECT st.search_id AS id, 1 AS tag, 0 AS word FROM saved_search_tags st
        WHERE st.tag = ANY($1::text[])
        UNION ALL
        SELECT sw.search_id, 0, 1 FROM saved_search_words sw
        WHERE sw.word = ANY($3::text[]) AND (sw.prefix OR sw.word = ANY($2::text[]))
        UNION ALL
        SELECT id, 0, 0 FROM saved_searches
        WHERE tag_count = 0 AND word_count = 0 AND like_vector IS NULL
        UNION ALL
        SELECT unnest($4::bigint[]), 0, 0
    ) AS hit
    GROUP BY id),
fresh AS (
    INSERT INTO alert_matches (search_id, item_id, matched_at)
    SELECT s.id, $5, $6
    FROM candidates c
    CROSS JOIN LATERAL (
        SELECT s.id FROM saved_searches s
        WHERE s.id = c.id AND s.tag_count = c.tags AND s.word_count = c.words
          AND (s.like_vector IS NULL OR s.id = ANY($4::bigint[]))
          AND (s.owner_id IS NULL OR s.owner_id = $7)
          AND (s.min_price_cents IS NULL OR s.min_price_cents <= $8)
          AND (s.max_price_cents IS NULL OR s.max_price_cents >= $8)
          AND (NOT s.in_stock OR $9 > 0)
          AND ($10 OR s.user_id = $7)
        LIMIT 1) AS s
    ON CONFLICT DO NOTHING
    RETURNING search_id)
SELECT s.id, s.user_id, s.filters, s.like_label
FROM fresh f
CROSS JOIN LATERAL (
    SELECT id, user_id, filters, like_label FROM saved_searches WHERE id = f.search_id LIMIT 1
) AS s
ORDER BY s.id
"""


class PostgresAlertRepository:
    """Saved searches in the PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def add(self, draft: SearchDraft, now: float, limits: SearchLimits) -> StoredSearch:
        """See :meth:`AlertRepository.add`."""
        vector = vector_bytes(draft.like_vector) if draft.like_vector is not None else None
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADD_LOCK)
            counts = await conn.fetchrow(_COUNTS_SQL, draft.user_id)
            assert counts is not None  # an aggregate always has a row
            check_limits(
                limits,
                mine=counts["mine"],
                total=counts["total"],
                pictures=counts["pictures"],
                picture=vector is not None,
            )
            row = await conn.fetchrow(
                _INSERT_SQL,
                draft.user_id,
                draft.filters_json.decode(),
                draft.owner_id,
                draft.min_price_cents,
                draft.max_price_cents,
                draft.in_stock,
                len(draft.tags),
                len(draft.words),
                draft.like_label,
                vector,
                draft.like_model,
                draft.min_similarity,
                now,
            )
            assert row is not None  # RETURNING of a row just inserted
            search = stored_search(row)
            await conn.executemany(
                "INSERT INTO saved_search_tags (tag, search_id) VALUES ($1, $2)",
                [(tag, search.id) for tag in draft.tags],
            )
            await conn.executemany(
                "INSERT INTO saved_search_words (word, search_id, prefix) VALUES ($1, $2, $3)",
                [(token.word, search.id, token.prefix) for token in draft.words],
            )
        return search

    async def searches(self, user_id: int) -> list[StoredSearch]:
        """See :meth:`AlertRepository.searches`."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM saved_searches WHERE user_id = $1 ORDER BY id", user_id
        )
        return [stored_search(row) for row in rows]

    async def remove(self, user_id: int, search_id: int) -> bool:
        """See :meth:`AlertRepository.remove`."""
        removed = await self._db.execute(
            "DELETE FROM saved_searches WHERE id = $1 AND user_id = $2", search_id, user_id
        )
        return removed > 0

    async def picture_searches(self, model_version: str) -> list[PictureSearch]:
        """See :meth:`AlertRepository.picture_searches`."""
        rows = await self._db.fetchall(
            "SELECT id, like_vector, min_similarity FROM saved_searches"
            " WHERE like_vector IS NOT NULL AND like_model = $1 ORDER BY id",
            model_version,
        )
        return [picture_search(row) for row in rows]

    async def picture_search(self, search_id: int, model_version: str) -> PictureSearch | None:
        """See :meth:`AlertRepository.picture_search`."""
        row = await self._db.fetchone(
            "SELECT id, like_vector, min_similarity FROM saved_searches"
            " WHERE id = $1 AND like_vector IS NOT NULL AND like_model = $2",
            search_id,
            model_version,
        )
        return picture_search(row) if row is not None else None

    async def item_facts(self, item_id: int) -> ItemFacts | None:
        """See :meth:`AlertRepository.item_facts`."""
        row = await self._db.fetchone(_ITEM_SQL, item_id)
        if row is None:
            return None
        return ItemFacts(
            id=row["id"],
            owner_id=row["owner_id"],
            public=row["public"],
            title=row["title"],
            description=row["description"],
            tags=tuple(row["tags"]),
            price_cents=row["price_cents"],
            stock=row["stock"],
        )

    async def record_matches(self, probe: ItemProbe, now: float) -> list[Match]:
        """See :meth:`AlertRepository.record_matches`."""
        facts = probe.facts
        rows = await self._db.fetchall(
            _MATCH_SQL,
            list(facts.tags),
            list(probe.tokens),
            list(probe.prefixes),
            list(probe.pictures),
            facts.id,
            now,
            facts.owner_id,
            facts.price_cents,
            facts.stock,
            facts.public,
        )
        return [
            Match(
                search_id=row["id"],
                user_id=row["user_id"],
                filters_json=row["filters"].encode(),
                like_label=row["like_label"],
            )
            for row in rows
        ]
