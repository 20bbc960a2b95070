"""Provides the SQLite implementation of :class:`~backend.alerts.repository.AlertRepository`.

Writes run in the database's serialised write transaction, so a bound checked in it still holds
when the row is written, and the matching statement's insert of (search, item) pairs races with
no other matching of the same item. Lists are passed as JSON arrays (``json_each``), so a
statement's text never depends on how many tags or tokens an item has.
"""

from __future__ import annotations

import json
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
from backend.storage.database import Database

_COLUMNS: Final = "id, user_id, filters, like_label, min_similarity, created_at"

_COUNTS_SQL: Final = """
SELECT (SELECT count(*) FROM saved_searches WHERE user_id = ?) AS mine,
       (SELECT count(*) FROM saved_searches) AS total,
       (SELECT count(*) FROM saved_searches WHERE like_vector IS NOT NULL) AS pictures
"""

_INSERT_SQL: Final = f"""
INSERT INTO saved_searches (user_id, filters, owner_id, min_price_cents, max_price_cents,
    in_stock, tag_count, word_count, like_label, like_vector, like_model, min_similarity,
    created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING {_COLUMNS}
"""

_ITEM_SQL: Final = """
SELECT i.id, i.owner_id, i.public, i.title, i.description, i.price_cents, i.stock,
       (SELECT json_group_array(t.name) FROM item_tags it JOIN tags t ON t.id = it.tag_id
        WHERE it.item_id = i.id) AS tags
FROM items i WHERE i.id = ?
"""

# Candidates come from the indexes only: searches naming one of the item's tags, one of its
# tokens (or a prefix of one), searches with neither (saved_searches_open) and the picture
# searches the matrix product found. Each is then checked whole: all its tags and tokens found
# (the counts), price, stock, seller and who may see the item. The insert records the pair, and
# a pair already recorded is skipped: RETURNING names only the new ones.
_MATCH_SQL: Final = """
WITH
probe_tags(tag) AS (SELECT value FROM json_each(:tags)),
probe_tokens(word) AS (SELECT value FROM json_each(:tokens)),
probe_prefixes(word) AS (SELECT value FROM json_each(:prefixes)),
probe_pictures(id) AS (SELECT value FROM json_each(:pictures)),
tag_hits(search_id, n) AS (
    SELECT st.search_id, count(*) FROM saved_search_tags st
    WHERE st.tag IN probe_tags GROUP BY st.search_id),
word_hits(search_id, n) AS (
    SELECT sw.search_id, count(*) FROM saved_search_words sw
    WHERE sw.word IN probe_prefixes AND (sw.prefix = 1 OR sw.word IN probe_tokens)
    GROUP BY sw.search_id),
candidates(id) AS (
    SELECT search_id FROM tag_hits
    UNION SELECT search_id FROM word_hits
    UNION SELECT id FROM saved_searches
          WHERE tag_count = 0 AND word_count = 0 AND like_vector IS NULL
    UNION SELECT id FROM probe_pictures)
INSERT INTO alert_matches (search_id, item_id, matched_at)
SELECT s.id, :item, :now
FROM candidates c
JOIN saved_searches s ON s.id = c.id
LEFT JOIN tag_hits th ON th.search_id = s.id
LEFT JOIN word_hits wh ON wh.search_id = s.id
WHERE coalesce(th.n, 0) = s.tag_count AND coalesce(wh.n, 0) = s.word_count
  AND (s.like_vector IS NULL OR s.id IN probe_pictures)
  AND (s.owner_id IS NULL OR s.owner_id = :owner)
  AND (s.min_price_cents IS NULL OR s.min_price_cents <= :price)
  AND (s.max_price_cents IS NULL OR s.max_price_cents >= :price)
  AND (s.in_stock = 0 OR :stock > 0)
  AND (:public = 1 OR s.user_id = :owner)
ON CONFLICT DO NOTHING
RETURNING search_id
"""


class SqliteAlertRepository:
    """Saved searches in the SQLite database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, draft: SearchDraft, now: float, limits: SearchLimits) -> StoredSearch:
        """See :meth:`AlertRepository.add`."""
        vector = vector_bytes(draft.like_vector) if draft.like_vector is not None else None
        async with self._db.transaction() as conn:
            async with conn.execute(_COUNTS_SQL, (draft.user_id,)) as cursor:
                counts = await cursor.fetchone()
            assert counts is not None  # an aggregate always has a row
            check_limits(
                limits,
                mine=counts["mine"],
                total=counts["total"],
                pictures=counts["pictures"],
                picture=vector is not None,
            )
            async with conn.execute(
                _INSERT_SQL,
                (
                    draft.user_id,
                    draft.filters_json.decode(),
                    draft.owner_id,
                    draft.min_price_cents,
                    draft.max_price_cents,
                    int(draft.in_stock),
                    len(draft.tags),
                    len(draft.words),
                    draft.like_label,
                    vector,
                    draft.like_model,
                    draft.min_similarity,
                    now,
                ),
            ) as cursor:
                row = await cursor.fetchone()
            assert row is not None  # RETURNING of a row just inserted
            search = stored_search(row)
            await conn.executemany(
                "INSERT INTO saved_search_tags (tag, search_id) VALUES (?, ?)",
                [(tag, search.id) for tag in draft.tags],
            )
            await conn.executemany(
                "INSERT INTO saved_search_words (word, search_id, prefix) VALUES (?, ?, ?)",
                [(token.word, search.id, int(token.prefix)) for token in draft.words],
            )
        return search

    async def searches(self, user_id: int) -> list[StoredSearch]:
        """See :meth:`AlertRepository.searches`."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM saved_searches WHERE user_id = ? ORDER BY id", (user_id,)
        )
        return [stored_search(row) for row in rows]

    async def remove(self, user_id: int, search_id: int) -> bool:
        """See :meth:`AlertRepository.remove`."""
        removed = await self._db.execute(
            "DELETE FROM saved_searches WHERE id = ? AND user_id = ?", (search_id, user_id)
        )
        return removed > 0

    async def picture_searches(self, model_version: str) -> list[PictureSearch]:
        """See :meth:`AlertRepository.picture_searches`."""
        rows = await self._db.fetchall(
            "SELECT id, like_vector, min_similarity FROM saved_searches"
            " WHERE like_vector IS NOT NULL AND like_model = ? ORDER BY id",
            (model_version,),
        )
        return [picture_search(row) for row in rows]

    async def picture_search(self, search_id: int, model_version: str) -> PictureSearch | None:
        """See :meth:`AlertRepository.picture_search`."""
        row = await self._db.fetchone(
            "SELECT id, like_vector, min_similarity FROM saved_searches"
            " WHERE id = ? AND like_vector IS NOT NULL AND like_model = ?",
            (search_id, model_version),
        )
        return picture_search(row) if row is not None else None

    async def item_facts(self, item_id: int) -> ItemFacts | None:
        """See :meth:`AlertRepository.item_facts`."""
        row = await self._db.fetchone(_ITEM_SQL, (item_id,))
        if row is None:
            return None
        return ItemFacts(
            id=row["id"],
            owner_id=row["owner_id"],
            public=bool(row["public"]),
            title=row["title"],
            description=row["description"],
            tags=tuple(json.loads(row["tags"])),
            price_cents=row["price_cents"],
            stock=row["stock"],
        )

    async def record_matches(self, probe: ItemProbe, now: float) -> list[Match]:
        """See :meth:`AlertRepository.record_matches`."""
        facts = probe.facts
        params = {
            "tags": json.dumps(facts.tags),
            "tokens": json.dumps(probe.tokens),
            "prefixes": json.dumps(probe.prefixes),
            "pictures": json.dumps(probe.pictures),
            "item": facts.id,
            "now": now,
            "owner": facts.owner_id,
            "price": facts.price_cents,
            "stock": facts.stock,
            "public": int(facts.public),
        }
        async with self._db.transaction() as conn:
            async with conn.execute(_MATCH_SQL, params) as cursor:
                new = [int(row[0]) for row in await cursor.fetchall()]
            if not new:
                return []
            async with conn.execute(
                "SELECT id, user_id, filters, like_label FROM saved_searches"
                " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                (json.dumps(new),),
            ) as cursor:
                rows = await cursor.fetchall()
        return [
            Match(
                search_id=row["id"],
                user_id=row["user_id"],
                filters_json=row["filters"].encode(),
                like_label=row["like_label"],
            )
            for row in rows
        ]
