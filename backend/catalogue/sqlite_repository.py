"""Provides :class:`SqliteCatalogueRepository`: items, tags and listings in SQLite.

Writes run in :meth:`Database.transaction` (one serialised writer, ``BEGIN IMMEDIATE``), so
"read the newest ``created_at``, then insert" and "delete items, then the pictures they leave
unshown" are atomic without further locking. Text search uses the FTS5 table ``items_fts``:
triggers keep its title and description in step with ``items``; its tags column is written
here whenever an item's tags change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Final

import aiosqlite

from backend.atrest.derivatives import PLAIN, DerivativeCodec
from backend.catalogue.cursors import Position
from backend.catalogue.filters import Criteria, TextMatch
from backend.catalogue.repository import (
    DerivativeKind,
    DerivativeRow,
    DuplicateItem,
    ItemDraft,
    ItemEdit,
    ItemRow,
    NewPicture,
    PictureMissing,
    StoredFiles,
)
from backend.catalogue.rows import (
    CARD_COLUMNS,
    CARD_JOINS,
    DERIVATIVE_COLUMNS,
    DETAIL_COLUMNS,
    DETAIL_FROM,
    DIGEST_COLUMNS,
    ITEM_COLUMNS,
    PICTURE_COLUMNS,
    PREVIEW_COLUMNS,
    cards_from_rows,
    derivative_from_row,
    detail_from_row,
    item_from_row,
    picture_values,
    preview_values,
)
from backend.catalogue.sqlite_filters import ORDERS, VISIBLE_SQL, seen_class_column, where
from backend.storage.database import Database
from protocol.messages.catalogue import ItemCard, ItemDetail, SortOrder, TagCount

#: Separates tag names in the ``tag_names`` column; tags never hold a space.
_TAG_SEPARATOR: Final = " "
#: An item's tags as one column: a correlated subquery on item_tags' primary key, run only for
#: the rows returned, so a batch takes one reader round trip and sees one snapshot.
_TAG_NAMES: Final = (
    f"(SELECT group_concat(t.name, '{_TAG_SEPARATOR}') FROM item_tags it"
    " JOIN tags t ON t.id = it.tag_id WHERE it.item_id = i.id) AS tag_names"
)
#: A card's columns, as :func:`~backend.catalogue.rows.cards_from_rows` reads them.
_CARD_COLUMNS: Final = f"{CARD_COLUMNS}, {_TAG_NAMES}"
_CARD_FROM: Final = f"items i {CARD_JOINS}"
#: SQLite's default limit on bound parameters is far higher; this keeps statements small.
_ID_BATCH: Final = 500
#: The columns an edit may change, by :class:`ItemEdit` field.
_EDITABLE: Final = ("title", "description", "price_cents", "stock", "public")


class SqliteCatalogueRepository:
    """The :class:`~backend.catalogue.repository.CatalogueRepository` of a SQLite database."""

    def __init__(self, db: Database, derivatives: DerivativeCodec = PLAIN) -> None:
        self._db = db
        #: Seals thumbnails and previews on their way in, opens them on their way out.
        self._derivatives = derivatives

    # -- items -----------------------------------------------------------------------------

    async def items(self, item_ids: Sequence[int]) -> dict[int, ItemRow]:
        found: dict[int, ItemRow] = {}
        for batch in _batches(item_ids):
            rows = await self._db.fetchall(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN ({_marks(batch)})", batch
            )
            found.update((item.id, item) for item in map(item_from_row, rows))
        return found

    async def item_showing(self, owner_id: int, sha256: str) -> int | None:
        row = await self._db.fetchone(
            "SELECT id FROM items WHERE owner_id = ? AND sha256 = ?", (owner_id, sha256)
        )
        return int(row[0]) if row else None

    async def add_item(self, draft: ItemDraft, now: float) -> int:
        draft = self._derivatives.seal_draft(draft)
        try:
            async with self._db.transaction() as conn:
                if draft.picture is not None:
                    await _insert_picture(conn, draft.picture, now)
                elif not await _picture_exists(conn, draft.sha256):
                    raise PictureMissing(draft.sha256)
                item_id = await _insert_item(conn, draft, now)
                await _set_tags(conn, item_id, draft.listing.tags)
                await conn.execute("DELETE FROM uploads WHERE id = ?", (draft.upload_id,))
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE" and "items." in str(exc):
                raise DuplicateItem(f"{draft.owner_id} lists {draft.sha256} already") from None
            raise
        return item_id

    async def edit_item(self, item_id: int, edit: ItemEdit, now: float) -> bool:
        fields = {
            name: int(value) if isinstance(value, bool) else value
            for name in _EDITABLE
            if (value := getattr(edit, name)) is not None
        }
        # Column names come from _EDITABLE only, never from a request.
        assignments = "".join(f"{name} = ?, " for name in fields)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                f"UPDATE items SET {assignments}updated_at = ? WHERE id = ?",
                (*fields.values(), now, item_id),
            )
            changed = cursor.rowcount > 0
            await cursor.close()
            if changed and edit.tags is not None:
                await _set_tags(conn, item_id, edit.tags)
        return changed

    async def delete_items(self, item_ids: Sequence[int]) -> list[StoredFiles]:
        async with self._db.transaction() as conn:
            shas: set[str] = set()
            for batch in _batches(item_ids):
                cursor = await conn.execute(
                    f"DELETE FROM items WHERE id IN ({_marks(batch)}) RETURNING sha256", batch
                )
                shas.update(str(row[0]) for row in await cursor.fetchall())
                await cursor.close()
            return await _delete_unshown_pictures(conn, shas)

    # -- reading ---------------------------------------------------------------------------

    async def cards(self, item_ids: Sequence[int], *, viewer_id: int | None) -> list[ItemCard]:
        found: dict[int, ItemCard] = {}
        unique = list(dict.fromkeys(item_ids))
        for batch in _batches(unique):
            condition = f"i.id IN ({_marks(batch)})"
            params: list[object] = list(batch)
            if viewer_id is not None:
                condition += f" AND {VISIBLE_SQL}"
                params.append(viewer_id)
            rows = await self._db.fetchall(
                f"SELECT {_CARD_COLUMNS} FROM {_CARD_FROM} WHERE {condition}", params
            )
            found.update((card.id, card) for card in cards_from_rows(rows, _tag_list))
        return [found[item_id] for item_id in unique if item_id in found]

    async def detail(self, item_id: int) -> ItemDetail | None:
        row = await self._db.fetchone(
            f"SELECT {DETAIL_COLUMNS}, {_TAG_NAMES} FROM {DETAIL_FROM} WHERE i.id = ?", (item_id,)
        )
        return detail_from_row(row, _tag_list) if row is not None else None

    async def derivatives(
        self, kind: DerivativeKind, item_ids: Sequence[int]
    ) -> list[DerivativeRow]:
        found: list[DerivativeRow] = []
        for batch in _batches(list(dict.fromkeys(item_ids))):
            rows = await self._db.fetchall(
                f"SELECT {DERIVATIVE_COLUMNS[kind]} WHERE i.id IN ({_marks(batch)})", batch
            )
            found.extend(map(derivative_from_row, rows))
        return found

    async def record_digests(
        self, kind: DerivativeKind, digests: Sequence[tuple[str, str, int]]
    ) -> None:
        table, digest, size = DIGEST_COLUMNS[kind]
        await self._db.executemany(
            f"UPDATE {table} SET {digest} = ?, {size} = ? WHERE sha256 = ? AND {digest} IS NULL",
            [(sha256, length, picture) for picture, sha256, length in digests],
        )

    async def page(
        self,
        viewer_id: int,
        criteria: Criteria,
        sort: SortOrder,
        *,
        after: Position | None,
        limit: int,
        part: TextMatch | None = None,
    ) -> list[ItemCard]:
        columns, params = _CARD_COLUMNS, list[object]()
        seen = criteria.seen if part is TextMatch.SEEN else None
        if seen is not None:
            column, params = seen_class_column(seen)
            columns = f"{columns}, {column}"
        condition, where_params = where(criteria, viewer_id, part)
        params.extend(where_params)
        order_by, after_key = ORDERS[sort]
        if after is not None:
            condition = f"{condition} AND {after_key}"
            params.extend(after)
        rows = await self._db.fetchall(
            f"SELECT {columns} FROM {_CARD_FROM} WHERE {condition} ORDER BY {order_by} LIMIT ?",
            [*params, limit],
        )
        return cards_from_rows(rows, _tag_list, None if seen is None else seen.classes)

    async def count(self, viewer_id: int, criteria: Criteria) -> int:
        condition, params = where(criteria, viewer_id)
        row = await self._db.fetchone(f"SELECT COUNT(*) FROM items i WHERE {condition}", params)
        return int(row[0]) if row else 0

    async def matching_ids(self, viewer_id: int, criteria: Criteria) -> list[int]:
        condition, params = where(criteria, viewer_id)
        rows = await self._db.fetchall(
            f"SELECT i.id FROM items i WHERE {condition} ORDER BY i.id", params
        )
        return [int(row[0]) for row in rows]

    # -- tags ------------------------------------------------------------------------------

    async def tag_counts(self, viewer_id: int, prefix: str, limit: int) -> list[TagCount]:
        # A normalised prefix holds only [a-z0-9-], none of which GLOB treats specially.
        rows = await self._db.fetchall(
            "SELECT t.name, COUNT(i.id) AS n FROM tags t"
            " LEFT JOIN item_tags it ON it.tag_id = t.id"
            f" LEFT JOIN items i ON i.id = it.item_id AND {VISIBLE_SQL}"
            " WHERE t.name GLOB ?"
            " GROUP BY t.id HAVING n > 0 OR t.starter = 1"
            " ORDER BY n DESC, t.name LIMIT ?",
            (viewer_id, prefix + "*", limit),
        )
        return [TagCount(name=str(row[0]), count=int(row[1])) for row in rows]

    async def has_starter_tags(self) -> bool:
        return await self._db.fetchone("SELECT 1 FROM tags WHERE starter = 1 LIMIT 1") is not None

    async def add_starter_tags(self, tags: Sequence[str]) -> None:
        await self._db.executemany(
            "INSERT INTO tags (name, starter) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET starter = 1",
            [(tag,) for tag in tags],
        )


def _batches(item_ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(item_ids), _ID_BATCH):
        yield list(item_ids[start : start + _ID_BATCH])


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _tag_list(tag_names: str | None) -> list[str]:
    """The tags of a ``tag_names`` column, sorted by name.

    group_concat's order is unspecified, so they are sorted here; tags are ASCII, so Python's
    order is SQLite's BINARY order.
    """
    return sorted(tag_names.split(_TAG_SEPARATOR)) if tag_names else []


async def _picture_exists(conn: aiosqlite.Connection, sha256: str) -> bool:
    async with conn.execute("SELECT 1 FROM pictures WHERE sha256 = ?", (sha256,)) as cursor:
        return await cursor.fetchone() is not None


async def _insert_picture(conn: aiosqlite.Connection, picture: NewPicture, now: float) -> None:
    """Insert a picture's rows, unless they exist (then the stored files are the same)."""
    await conn.execute(
        f"INSERT INTO pictures ({PICTURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (sha256) DO NOTHING",
        picture_values(picture, now),
    )
    await conn.execute(
        f"INSERT INTO picture_previews ({PREVIEW_COLUMNS}) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (sha256) DO NOTHING",
        preview_values(picture),
    )


async def _insert_item(conn: aiosqlite.Connection, draft: ItemDraft, now: float) -> int:
    """Insert the item row; ``created_at`` never goes below the newest item's."""
    async with conn.execute("SELECT MAX(created_at) FROM items") as cursor:
        newest = await cursor.fetchone()
    created_at = max(now, float(newest[0]) if newest and newest[0] is not None else now)
    listing = draft.listing
    async with conn.execute(
        "INSERT INTO items (owner_id, title, description, price_cents, stock, public, sha256,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            draft.owner_id,
            listing.title,
            listing.description,
            listing.price_cents,
            listing.stock,
            int(listing.public),
            draft.sha256,
            created_at,
            created_at,
        ),
    ) as cursor:
        item_id = cursor.lastrowid
    assert item_id is not None
    return item_id


async def _set_tags(conn: aiosqlite.Connection, item_id: int, tags: Sequence[str]) -> None:
    """Replace an item's tags, text index included."""
    await conn.execute("DELETE FROM item_tags WHERE item_id = ?", (item_id,))
    if tags:
        await conn.executemany(
            "INSERT INTO tags (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
            [(tag,) for tag in tags],
        )
        await conn.execute(
            "INSERT INTO item_tags (item_id, tag_id)"
            f" SELECT ?, id FROM tags WHERE name IN ({_marks(tags)})",
            (item_id, *tags),
        )
    await conn.execute(
        "UPDATE items_fts SET tags = ? WHERE rowid = ?", (_TAG_SEPARATOR.join(tags), item_id)
    )


async def _delete_unshown_pictures(conn: aiosqlite.Connection, shas: set[str]) -> list[StoredFiles]:
    """Delete the rows of those of ``shas`` no item shows any more; return their files."""
    orphans: list[StoredFiles] = []
    for sha256 in sorted(shas):
        async with conn.execute(
            "DELETE FROM pictures WHERE sha256 = ?"
            " AND NOT EXISTS (SELECT 1 FROM items WHERE items.sha256 = pictures.sha256)"
            " RETURNING clean_sha256",
            (sha256,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None:
            orphans.append(StoredFiles(sha256, str(row[0])))
    return orphans
