"""Provides the PostgreSQL implementation of the inbox repository.

Lists of ids travel as one array parameter (``unnest``/``ANY``). Concurrent deliveries to one
inbox from several instances may each trim it; the trims only ever remove notices beyond the
newest ``keep``, so together they leave the same inbox as one would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from backend.inbox.notices import NOTICE_SELECT, Delivered, NewNotice, StoredNotice, notice_from_row
from backend.storage.postgres import PostgresDatabase

#: Above every id PostgreSQL hands out (identity columns are BIGINT).
_ABOVE_EVERY_ID = 2**63 - 1

# Each (user, notice) row whose user exists and may see the notice's item (any user, for a notice
# about none), in the order given.
_INSERT_SQL = """
INSERT INTO notices (user_id, kind, item_id, text, created_at, is_read)
SELECT u.id, d.kind, d.item_id, d.text, $5, FALSE
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY
     AS d(user_id, kind, item_id, text, n)
JOIN users AS u ON u.id = d.user_id
LEFT JOIN items AS i ON i.id = d.item_id
WHERE d.item_id IS NULL OR i.public OR i.owner_id = u.id OR u.is_admin
ORDER BY d.n
RETURNING id
"""

_TRIM_SQL = """
DELETE FROM notices WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY id DESC) AS place
        FROM notices WHERE user_id = ANY($1::bigint[])
    ) AS ranked WHERE place > $2
)
"""

_UNREAD_BY_USER_SQL = """
SELECT user_id, count(*) AS unread FROM notices
WHERE user_id = ANY($1::bigint[]) AND NOT is_read
GROUP BY user_id
"""

_BY_IDS_SQL = f"{NOTICE_SELECT} WHERE n.id = ANY($1::bigint[])"

_LIST_SQL = f"{NOTICE_SELECT} WHERE n.user_id = $1 AND n.id < $2 ORDER BY n.id DESC LIMIT $3"

_ONE_SQL = f"{NOTICE_SELECT} WHERE n.id = $1"

_UNREAD_SQL = "SELECT count(*) FROM notices WHERE user_id = $1 AND NOT is_read"

_MARK_SOME_SQL = """
UPDATE notices SET is_read = TRUE
WHERE user_id = $1 AND NOT is_read AND id = ANY($2::bigint[])
"""

_MARK_ALL_SQL = "UPDATE notices SET is_read = TRUE WHERE user_id = $1 AND NOT is_read"

_CLEAR_SQL = "DELETE FROM notices WHERE user_id = $1"


class PostgresInboxRepository:
    """:class:`~backend.inbox.repository.InboxRepository` over PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def add(
        self, user_ids: Sequence[int], notice: NewNotice, *, now: float, keep: int
    ) -> list[Delivered]:
        async with self._db.transaction() as conn:
            return await add_notices(
                conn, [(user, notice) for user in sorted(set(user_ids))], now=now, keep=keep
            )

    async def notices(self, user_id: int, *, below: int | None, limit: int) -> list[StoredNotice]:
        start = _ABOVE_EVERY_ID if below is None else below
        rows = await self._db.fetchall(_LIST_SQL, user_id, start, limit)
        return [notice_from_row(row) for row in rows]

    async def notice(self, notice_id: int) -> StoredNotice | None:
        row = await self._db.fetchone(_ONE_SQL, notice_id)
        return None if row is None else notice_from_row(row)

    async def unread(self, user_id: int) -> int:
        return int(await self._db.fetchval(_UNREAD_SQL, user_id) or 0)

    async def mark_read(self, user_id: int, notice_ids: Sequence[int] | None) -> int:
        async with self._db.transaction() as conn:
            if notice_ids is None:
                await conn.execute(_MARK_ALL_SQL, user_id)
            else:
                await conn.execute(_MARK_SOME_SQL, user_id, list(notice_ids))
            return int(await conn.fetchval(_UNREAD_SQL, user_id) or 0)

    async def clear(self, user_id: int) -> None:
        await self._db.execute(_CLEAR_SQL, user_id)


async def add_notices(
    conn: asyncpg.Connection[Any],
    deliveries: Sequence[tuple[int, NewNotice]],
    *,
    now: float,
    keep: int,
) -> list[Delivered]:
    """Store each (user, notice) in the transaction ``conn`` is in; see the SQLite
    :func:`backend.inbox.sqlite_repository.add_notices`."""
    if not deliveries:
        return []
    rows = await conn.fetch(
        _INSERT_SQL,
        [user for user, _ in deliveries],
        [notice.kind.value for _, notice in deliveries],
        [notice.item_id for _, notice in deliveries],
        [notice.clipped_text() for _, notice in deliveries],
        now,
    )
    inserted = [int(row["id"]) for row in rows]
    if not inserted:
        return []
    users = sorted({user for user, _ in deliveries})
    await conn.execute(_TRIM_SQL, users, keep)
    unread = {
        int(row["user_id"]): int(row["unread"])
        for row in await conn.fetch(_UNREAD_BY_USER_SQL, users)
    }
    # A notice trimmed at once (keep = 0) is not delivered: it is not in the inbox.
    found = await conn.fetch(_BY_IDS_SQL, inserted)
    stored = sorted((notice_from_row(row) for row in found), key=lambda row: row.id)
    return [Delivered(notice=row, unread=unread.get(row.user_id, 0)) for row in stored]
