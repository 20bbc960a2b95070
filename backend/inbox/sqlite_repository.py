"""Provides the SQLite implementation of the inbox repository.

Changes run in write transactions of the database's serialised writer; reads that must see them
(the unread count after a change) run on the writer too, since a reader connection may still
serve an older snapshot. Lists of ids travel as one JSON array (``json_each``), so a statement's
size never depends on how many there are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiosqlite

from backend.inbox.notices import NOTICE_SELECT, Delivered, NewNotice, StoredNotice, notice_from_row
from backend.storage.database import Database

#: Above every id SQLite hands out.
_ABOVE_EVERY_ID = 2**63 - 1

# Each (user, notice) row whose user exists and may see the notice's item (any user, for a notice
# about none), in the order given. A row is [user id, kind, item id or null, text].
_INSERT_SQL = """
INSERT INTO notices (user_id, kind, item_id, text, created_at, is_read)
SELECT u.id, json_extract(d.value, '$[1]'), json_extract(d.value, '$[2]'),
       json_extract(d.value, '$[3]'), :now, 0
FROM json_each(:rows) AS d
JOIN users AS u ON u.id = json_extract(d.value, '$[0]')
LEFT JOIN items AS i ON i.id = json_extract(d.value, '$[2]')
WHERE json_extract(d.value, '$[2]') IS NULL OR i.public = 1 OR i.owner_id = u.id
   OR u.is_admin = 1
ORDER BY d.key
RETURNING id
"""

# Each inbox keeps its newest :keep notices; its index (user_id, id) serves the ranking.
_TRIM_SQL = """
DELETE FROM notices WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY id DESC) AS place
        FROM notices WHERE user_id IN (SELECT value FROM json_each(:users))
    ) WHERE place > :keep
)
"""

_UNREAD_BY_USER_SQL = """
SELECT user_id, count(*) AS unread FROM notices
WHERE user_id IN (SELECT value FROM json_each(?)) AND is_read = 0
GROUP BY user_id
"""

_BY_IDS_SQL = f"{NOTICE_SELECT} WHERE n.id IN (SELECT value FROM json_each(?))"

_LIST_SQL = f"{NOTICE_SELECT} WHERE n.user_id = ? AND n.id < ? ORDER BY n.id DESC LIMIT ?"

_ONE_SQL = f"{NOTICE_SELECT} WHERE n.id = ?"

_UNREAD_SQL = "SELECT count(*) FROM notices WHERE user_id = ? AND is_read = 0"

_MARK_SOME_SQL = """
UPDATE notices SET is_read = 1
WHERE user_id = ? AND is_read = 0 AND id IN (SELECT value FROM json_each(?))
"""

_MARK_ALL_SQL = "UPDATE notices SET is_read = 1 WHERE user_id = ? AND is_read = 0"

_CLEAR_SQL = "DELETE FROM notices WHERE user_id = ?"


class SqliteInboxRepository:
    """:class:`~backend.inbox.repository.InboxRepository` over SQLite."""

    def __init__(self, db: Database) -> None:
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
        rows = await self._db.fetchall(_LIST_SQL, (user_id, start, limit))
        return [notice_from_row(row) for row in rows]

    async def notice(self, notice_id: int) -> StoredNotice | None:
        row = await self._db.fetchone(_ONE_SQL, (notice_id,))
        return None if row is None else notice_from_row(row)

    async def unread(self, user_id: int) -> int:
        row = await self._db.fetchone(_UNREAD_SQL, (user_id,))
        return int(row[0]) if row else 0

    async def mark_read(self, user_id: int, notice_ids: Sequence[int] | None) -> int:
        async with self._db.transaction() as conn:
            if notice_ids is None:
                await conn.execute(_MARK_ALL_SQL, (user_id,))
            else:
                await conn.execute(_MARK_SOME_SQL, (user_id, json.dumps(list(notice_ids))))
            return await _unread(conn, user_id)

    async def clear(self, user_id: int) -> None:
        await self._db.execute(_CLEAR_SQL, (user_id,))


async def add_notices(
    conn: aiosqlite.Connection,
    deliveries: Sequence[tuple[int, NewNotice]],
    *,
    now: float,
    keep: int,
) -> list[Delivered]:
    """Store each (user, notice) in the write transaction ``conn`` is in, as
    :meth:`~backend.inbox.repository.InboxRepository.add` does for one notice: only for a user
    who exists and may see the notice's item, each inbox then kept to its newest ``keep``.

    For a deliverer that stores its notices with writes of its own (one transaction for an
    item's alerts and their record); it announces the result with
    :meth:`~backend.inbox.service.InboxService.announce` once the transaction has committed.
    """
    if not deliveries:
        return []
    rows = json.dumps(
        [
            [user, notice.kind.value, notice.item_id, notice.clipped_text()]
            for user, notice in deliveries
        ]
    )
    inserted = [
        int(row[0]) for row in await conn.execute_fetchall(_INSERT_SQL, {"rows": rows, "now": now})
    ]
    if not inserted:
        return []
    users = json.dumps(sorted({user for user, _ in deliveries}))
    await conn.execute(_TRIM_SQL, {"users": users, "keep": keep})
    unread = {
        int(row["user_id"]): int(row["unread"])
        for row in await conn.execute_fetchall(_UNREAD_BY_USER_SQL, (users,))
    }
    # A notice trimmed at once (keep = 0) is not delivered: it is not in the inbox.
    found = await conn.execute_fetchall(_BY_IDS_SQL, (json.dumps(inserted),))
    stored = sorted((notice_from_row(row) for row in found), key=lambda row: row.id)
    return [Delivered(notice=row, unread=unread.get(row.user_id, 0)) for row in stored]


async def _unread(conn: aiosqlite.Connection, user_id: int) -> int:
    rows = list(await conn.execute_fetchall(_UNREAD_SQL, (user_id,)))
    return int(rows[0][0]) if rows else 0
