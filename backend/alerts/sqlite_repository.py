"""Provides the SQLite implementation of :class:`~backend.alerts.repository.AlertRepository`.

Writes run in the database's serialised write transaction, so a bound checked in it still holds
when the row is written, and the matching statement's insert of (search, item) pairs races with
no other matching of the same item. One server owns a SQLite database, so it alone drains the
backlog; an entry is settled only at the version it was read at. Lists are passed as JSON arrays
(``json_each``), so a statement's text never depends on how many tags or tokens an item has.
"""

from __future__ import annotations

import json
from typing import Final

import aiosqlite

from backend.alerts.repository import (
    BacklogEntry,
    ItemFacts,
    ItemProbe,
    Match,
    NoticeFor,
    Overflow,
    PictureSearch,
    Recorded,
    SearchDraft,
    SearchLimits,
    Settle,
    StoredSearch,
    check_limits,
)
from backend.alerts.rows import backlog_entry, match_of, picture_search, stored_search, vector_bytes
from backend.inbox.sqlite_repository import add_notices
from backend.storage.database import Database

#: The database's clock in seconds since the epoch, as the backlog's triggers read it.
_NOW: Final = "((julianday('now') - 2440587.5) * 86400.0)"

_DUE_SQL: Final = f"""
SELECT item_id, version, {_NOW} - queued_at AS age, attempts FROM alert_backlog
WHERE not_before <= {_NOW} ORDER BY not_before, item_id LIMIT ?
"""

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

    async def record_matches(
        self,
        probe: ItemProbe,
        now: float,
        notice_for: NoticeFor,
        *,
        keep: int,
        settle: Settle | None = None,
    ) -> Recorded | None:
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
            if settle is not None and not await _holds(conn, settle.entry):
                return None
            async with conn.execute(_MATCH_SQL, params) as cursor:
                new = [int(row[0]) for row in await cursor.fetchall()]
            matches: list[Match] = []
            if new:
                async with conn.execute(
                    "SELECT id, user_id, filters, like_label FROM saved_searches"
                    " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (json.dumps(new),),
                ) as cursor:
                    matches = [match_of(row) for row in await cursor.fetchall()]
            delivered = await add_notices(
                conn, [(found.user_id, notice_for(found)) for found in matches], now=now, keep=keep
            )
            if settle is not None:
                await _settle(conn, settle)
        return Recorded(matches, delivered)

    async def due(self, limit: int) -> list[BacklogEntry]:
        """See :meth:`AlertRepository.due`."""
        return [backlog_entry(row) for row in await self._db.fetchall(_DUE_SQL, (limit,))]

    async def retry_later(self, entry: BacklogEntry, seconds: float, *, failed: bool) -> None:
        """See :meth:`AlertRepository.retry_later`."""
        await self._db.execute(
            f"UPDATE alert_backlog SET not_before = {_NOW} + ?, attempts = attempts + ?"
            " WHERE item_id = ? AND version = ?",
            (seconds, int(failed), entry.item_id, entry.version),
        )

    async def discard(self, entry: BacklogEntry) -> None:
        """See :meth:`AlertRepository.discard`."""
        await self._db.execute(
            "DELETE FROM alert_backlog WHERE item_id = ? AND version = ?",
            (entry.item_id, entry.version),
        )

    async def wake_waiting(self) -> None:
        """See :meth:`AlertRepository.wake_waiting`."""
        await self._db.execute(
            f"UPDATE alert_backlog SET not_before = {_NOW} WHERE not_before > {_NOW}"
            " AND attempts = 0"
        )

    async def take_overflow(self) -> Overflow | None:
        """See :meth:`AlertRepository.take_overflow`."""
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT dropped, last_dropped, capacity FROM alert_backlog_state"
                " WHERE id = 1 AND dropped > 0"
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            await conn.execute("UPDATE alert_backlog_state SET dropped = 0 WHERE id = 1")
        return Overflow(row["dropped"], row["last_dropped"], row["capacity"])

    async def backlog_size(self) -> int:
        """See :meth:`AlertRepository.backlog_size`."""
        row = await self._db.fetchone("SELECT count(*) FROM alert_backlog")
        assert row is not None  # an aggregate always has a row
        return int(row[0])


async def _holds(conn: aiosqlite.Connection, entry: BacklogEntry) -> bool:
    """Whether the backlog still holds ``entry`` at the version it was read at."""
    async with conn.execute(
        "SELECT 1 FROM alert_backlog WHERE item_id = ? AND version = ?",
        (entry.item_id, entry.version),
    ) as cursor:
        return await cursor.fetchone() is not None


async def _settle(conn: aiosqlite.Connection, settle: Settle) -> None:
    """Delete the entry, or make it due again in ``settle.retry_in`` seconds."""
    if settle.retry_in is None:
        await conn.execute("DELETE FROM alert_backlog WHERE item_id = ?", (settle.entry.item_id,))
    else:
        await conn.execute(
            f"UPDATE alert_backlog SET not_before = {_NOW} + ? WHERE item_id = ?",
            (settle.retry_in, settle.entry.item_id),
        )
