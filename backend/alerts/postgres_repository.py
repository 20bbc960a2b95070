"""Provides the PostgreSQL implementation of :class:`~backend.alerts.repository.AlertRepository`.

Several instances share the database, so nothing relies on one process: adding a search takes a
transaction-level advisory lock (saving searches is rare; one lock keeps every bound exact), and
the matching statement's ``INSERT ... ON CONFLICT DO NOTHING`` on the (search, item) key lets only
one of two instances matching the same item at once record (and so alert on) each pair. Backlog
entries are claimed with ``FOR UPDATE SKIP LOCKED`` in the transaction that records the item's
alerts and deletes the entry: exactly one instance settles each, and an edit of the item made
meanwhile (its trigger waits for that row) queues it again after the commit.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg

from backend.alerts.repository import (
    BacklogEntry,
    ItemFacts,
    ItemProbe,
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
from backend.inbox.postgres_repository import add_notices
from backend.storage.postgres import PostgresDatabase, job_lock_key

#: The database's clock in seconds since the epoch, as the backlog's trigger reads it.
_NOW: Final = "extract(epoch FROM clock_timestamp())"

# Rows another instance is settling are skipped (their locks end with this statement's own).
_DUE_SQL: Final = f"""
SELECT item_id, version, {_NOW} - queued_at AS age, attempts FROM alert_backlog
WHERE not_before <= {_NOW} ORDER BY not_before, item_id LIMIT $1
FOR UPDATE SKIP LOCKED
"""

# The old count, before the reset, comes from the row as locked by the subquery.
_TAKE_OVERFLOW_SQL: Final = """
UPDATE alert_backlog_state AS s SET dropped = 0
FROM (SELECT dropped, last_dropped FROM alert_backlog_state WHERE id = 1 FOR UPDATE) AS old
WHERE s.id = 1 AND old.dropped > 0
RETURNING old.dropped, old.last_dropped, s.capacity
"""

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
        async with self._db.transaction() as conn:
            if settle is not None and not await _claim(conn, settle.entry):
                return None
            rows = await conn.fetch(
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
            matches = [match_of(row) for row in rows]
            delivered = await add_notices(
                conn, [(found.user_id, notice_for(found)) for found in matches], now=now, keep=keep
            )
            if settle is not None:
                await _settle(conn, settle)
        return Recorded(matches, delivered)

    async def due(self, limit: int) -> list[BacklogEntry]:
        """See :meth:`AlertRepository.due`."""
        return [backlog_entry(row) for row in await self._db.fetchall(_DUE_SQL, limit)]

    async def retry_later(self, entry: BacklogEntry, seconds: float, *, failed: bool) -> None:
        """See :meth:`AlertRepository.retry_later`."""
        await self._db.execute(
            f"UPDATE alert_backlog SET not_before = {_NOW} + $1, attempts = attempts + $2"
            " WHERE item_id = $3 AND version = $4",
            seconds,
            int(failed),
            entry.item_id,
            entry.version,
        )

    async def discard(self, entry: BacklogEntry) -> None:
        """See :meth:`AlertRepository.discard`."""
        await self._db.execute(
            "DELETE FROM alert_backlog WHERE item_id = $1 AND version = $2",
            entry.item_id,
            entry.version,
        )

    async def wake_waiting(self) -> None:
        """See :meth:`AlertRepository.wake_waiting`."""
        await self._db.execute(
            f"UPDATE alert_backlog SET not_before = {_NOW} WHERE not_before > {_NOW}"
            " AND attempts = 0"
        )

    async def take_overflow(self) -> Overflow | None:
        """See :meth:`AlertRepository.take_overflow`."""
        row = await self._db.fetchone(_TAKE_OVERFLOW_SQL)
        if row is None:
            return None
        return Overflow(row["dropped"], row["last_dropped"], row["capacity"])

    async def backlog_size(self) -> int:
        """See :meth:`AlertRepository.backlog_size`."""
        return int(await self._db.fetchval("SELECT count(*) FROM alert_backlog"))


async def _claim(conn: asyncpg.Connection[Any], entry: BacklogEntry) -> bool:
    """Lock ``entry``'s row for this transaction; ``False`` if another instance holds it, it
    is gone, or its item changed since it was read."""
    version = await conn.fetchval(
        "SELECT version FROM alert_backlog WHERE item_id = $1 FOR UPDATE SKIP LOCKED",
        entry.item_id,
    )
    return bool(version == entry.version)


async def _settle(conn: asyncpg.Connection[Any], settle: Settle) -> None:
    """Delete the entry, or make it due again in ``settle.retry_in`` seconds."""
    if settle.retry_in is None:
        await conn.execute("DELETE FROM alert_backlog WHERE item_id = $1", settle.entry.item_id)
    else:
        await conn.execute(
            f"UPDATE alert_backlog SET not_before = {_NOW} + $2 WHERE item_id = $1",
            settle.entry.item_id,
            settle.retry_in,
        )
