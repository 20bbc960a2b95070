"""Provides :class:`PostgresCatalogueRepository`: items, tags and listings in PostgreSQL.

Transactions run concurrently here, possibly in several server processes, so the invariants
are guarded in SQL: advisory locks (:mod:`backend.catalogue.postgres_locks`) serialise adding
an item for a picture with deleting that picture, and adding items with each other; the unique
key on (owner, picture) refuses a second listing of one picture by one seller. Text search uses
the generated ``search`` column, fed by the ``tags_text`` column that is written here whenever
an item's tags change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from backend.atrest.derivatives import PLAIN, DerivativeCodec
from backend.catalogue.cursors import Position
from backend.catalogue.filters import Criteria, TextMatch
from backend.catalogue.postgres_filters import ORDERS, Args, seen_class_column, visible, where
from backend.catalogue.postgres_locks import lock_item_clock, lock_pictures
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
from backend.storage.postgres import PostgresDatabase
from protocol.messages.catalogue import ItemCard, ItemDetail, SortOrder, TagCount

#: An item's tag names, sorted bytewise as SQLite sorts them whatever the database's collation.
_TAG_NAMES: Final = (
    "ARRAY(SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id"
    ' WHERE it.item_id = i.id ORDER BY t.name COLLATE "C") AS tag_names'
)
#: A card's columns, as :func:`~backend.catalogue.rows.cards_from_rows` reads them.
_CARD_COLUMNS: Final = f"{CARD_COLUMNS}, {_TAG_NAMES}"
#: The columns of ``items`` a card shows.
_CARD_ITEM_COLUMNS: Final = (
    "i.id, i.title, i.price_cents, i.stock, i.public, i.owner_id, i.sha256, i.created_at"
)
#: The columns an edit may change, by :class:`ItemEdit` field.
_EDITABLE: Final = ("title", "description", "price_cents", "stock", "public")
#: Separates tag names in ``tags_text``.
_TAG_SEPARATOR: Final = " "
_OWNER_PICTURE_KEY: Final = "items_owner_picture"


def page_query(
    viewer_id: int,
    criteria: Criteria,
    sort: SortOrder,
    *,
    after: Position | None,
    limit: int,
    part: TextMatch | None = None,
) -> tuple[str, list[object]]:
    """The statement of one listing batch and its arguments (see ``CatalogueRepository.page``).

    The batch's items are chosen first, and only they are joined to their seller and picture:
    whichever way the planner finds them (an order's index, or a tag's items sorted), the joins
    never run for more rows than the batch holds; so is what the model saw looked up.
    """
    args = Args()
    condition = where(criteria, viewer_id, args, part)
    order_by, after_key = ORDERS[sort]
    if after is not None:
        condition += " AND " + after_key.format(*(args.add(value) for value in after))
    columns = _CARD_COLUMNS
    if part is TextMatch.SEEN and criteria.seen is not None:
        columns = f"{columns}, {seen_class_column(criteria.seen, args)}"
    sql = (
        f"SELECT {columns} FROM (SELECT {_CARD_ITEM_COLUMNS} FROM items i"
        f" WHERE {condition} ORDER BY {order_by} LIMIT {args.add(limit)}) i {CARD_JOINS}"
        f" ORDER BY {order_by}"
    )
    return sql, args.values


class PostgresCatalogueRepository:
    """The :class:`~backend.catalogue.repository.CatalogueRepository` of a PostgreSQL database."""

    def __init__(self, db: PostgresDatabase, derivatives: DerivativeCodec = PLAIN) -> None:
        self._db = db
        #: Seals thumbnails and previews on their way in, opens them on their way out.
        self._derivatives = derivatives

    # -- items -----------------------------------------------------------------------------

    async def items(self, item_ids: Sequence[int]) -> dict[int, ItemRow]:
        rows = await self._db.fetchall(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ANY($1::bigint[])", list(item_ids)
        )
        return {item.id: item for item in map(item_from_row, rows)}

    async def item_showing(self, owner_id: int, sha256: str) -> int | None:
        item_id = await self._db.fetchval(
            "SELECT id FROM items WHERE owner_id = $1 AND sha256 = $2", owner_id, sha256
        )
        return int(item_id) if item_id is not None else None

    async def add_item(self, draft: ItemDraft, now: float) -> int:
        draft = self._derivatives.seal_draft(draft)
        listing = draft.listing
        try:
            async with self._db.transaction() as conn:
                # Keeps the picture from being deleted (by another server) until this commits.
                await lock_pictures(conn, [draft.sha256])
                if draft.picture is not None:
                    await _insert_picture(conn, draft.picture, now)
                elif not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pictures WHERE sha256 = $1)", draft.sha256
                ):
                    raise PictureMissing(draft.sha256)
                # Held to the commit: the newest created_at read here is the newest committed.
                await lock_item_clock(conn)
                item_id: int = await conn.fetchval(
                    "INSERT INTO items (owner_id, title, description, price_cents, stock, public,"
                    " sha256, tags_text, created_at, updated_at)"
                    " SELECT $1, $2, $3, $4, $5, $6, $7, $8, clock.now, clock.now"
                    " FROM (SELECT GREATEST($9::float8, max(created_at)) AS now FROM items) clock"
                    " RETURNING id",
                    draft.owner_id,
                    listing.title,
                    listing.description,
                    listing.price_cents,
                    listing.stock,
                    listing.public,
                    draft.sha256,
                    _TAG_SEPARATOR.join(listing.tags),
                    now,
                )
                await _replace_tags(conn, item_id, listing.tags)
                await conn.execute("DELETE FROM uploads WHERE id = $1", draft.upload_id)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == _OWNER_PICTURE_KEY:
                raise DuplicateItem(f"{draft.owner_id} lists {draft.sha256} already") from None
            raise
        return item_id

    async def edit_item(self, item_id: int, edit: ItemEdit, now: float) -> bool:
        args = Args()
        # Column names come from _EDITABLE only, never from a request.
        assignments = [
            f"{name} = {args.add(value)}"
            for name in _EDITABLE
            if (value := getattr(edit, name)) is not None
        ]
        if edit.tags is not None:
            assignments.append(f"tags_text = {args.add(_TAG_SEPARATOR.join(edit.tags))}")
        assignments.append(f"updated_at = {args.add(now)}")
        async with self._db.transaction() as conn:
            found = await conn.fetchval(
                f"UPDATE items SET {', '.join(assignments)} WHERE id = {args.add(item_id)}"
                " RETURNING id",
                *args.values,
            )
            if found is not None and edit.tags is not None:
                # The item's row lock, taken by the UPDATE, serialises edits of its tags.
                await _replace_tags(conn, item_id, edit.tags)
        return found is not None

    async def delete_items(self, item_ids: Sequence[int]) -> list[StoredFiles]:
        ids = list(item_ids)
        async with self._db.transaction() as conn:
            shas = [
                str(row[0])
                for row in await conn.fetch(
                    "SELECT DISTINCT sha256 FROM items WHERE id = ANY($1::bigint[])", ids
                )
            ]
            # Taken before the deletion, so no item for these pictures is being added now and
            # the check below sees every item that shows them.
            await lock_pictures(conn, shas)
            await conn.execute("DELETE FROM items WHERE id = ANY($1::bigint[])", ids)
            rows = await conn.fetch(
                "DELETE FROM pictures p WHERE sha256 = ANY($1::text[])"
                " AND NOT EXISTS (SELECT 1 FROM items i WHERE i.sha256 = p.sha256)"
                " RETURNING sha256, clean_sha256",
                shas,
            )
        orphans = [StoredFiles(str(row[0]), str(row[1])) for row in rows]
        return sorted(orphans, key=lambda files: files.sha256)

    # -- reading ---------------------------------------------------------------------------

    async def cards(self, item_ids: Sequence[int], *, viewer_id: int | None) -> list[ItemCard]:
        unique = list(dict.fromkeys(item_ids))
        args = Args()
        condition = f"i.id = ANY({args.add(unique)}::bigint[])"
        if viewer_id is not None:
            condition += f" AND {visible(args.add(viewer_id))}"
        rows = await self._db.fetchall(
            f"SELECT {_CARD_COLUMNS} FROM items i {CARD_JOINS} WHERE {condition}", *args.values
        )
        found = {card.id: card for card in cards_from_rows(rows, list)}
        return [found[item_id] for item_id in unique if item_id in found]

    async def detail(self, item_id: int) -> ItemDetail | None:
        row = await self._db.fetchone(
            f"SELECT {DETAIL_COLUMNS}, {_TAG_NAMES} FROM {DETAIL_FROM} WHERE i.id = $1", item_id
        )
        return detail_from_row(row, list) if row is not None else None

    async def derivatives(
        self, kind: DerivativeKind, item_ids: Sequence[int]
    ) -> list[DerivativeRow]:
        rows = await self._db.fetchall(
            f"SELECT {DERIVATIVE_COLUMNS[kind]} WHERE i.id = ANY($1::bigint[])",
            list(dict.fromkeys(item_ids)),
        )
        return [derivative_from_row(row) for row in rows]

    async def record_digests(
        self, kind: DerivativeKind, digests: Sequence[tuple[str, str, int]]
    ) -> None:
        table, digest, size = DIGEST_COLUMNS[kind]
        await self._db.executemany(
            f"UPDATE {table} SET {digest} = $1, {size} = $2 WHERE sha256 = $3 AND {digest} IS NULL",
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
        sql, args = page_query(viewer_id, criteria, sort, after=after, limit=limit, part=part)
        seen = criteria.seen if part is TextMatch.SEEN else None
        rows = await self._db.fetchall(sql, *args)
        return cards_from_rows(
            rows,
            list,
            None if seen is None else seen.classes,
        )

    async def count(self, viewer_id: int, criteria: Criteria) -> int:
        args = Args()
        condition = where(criteria, viewer_id, args)
        return int(
            await self._db.fetchval(f"SELECT count(*) FROM items i WHERE {condition}", *args.values)
        )

    async def matching_ids(self, viewer_id: int, criteria: Criteria) -> list[int]:
        args = Args()
        condition = where(criteria, viewer_id, args)
        rows = await self._db.fetchall(
            f"SELECT i.id FROM items i WHERE {condition} ORDER BY i.id", *args.values
        )
        return [int(row[0]) for row in rows]

    # -- tags ------------------------------------------------------------------------------

    async def tag_counts(self, viewer_id: int, prefix: str, limit: int) -> list[TagCount]:
        rows = await self._db.fetchall(
            "SELECT t.name, count(i.id) AS n FROM tags t"
            " LEFT JOIN item_tags it ON it.tag_id = t.id"
            f" LEFT JOIN items i ON i.id = it.item_id AND {visible('$1')}"
            " WHERE starts_with(t.name, $2)"
            " GROUP BY t.id HAVING count(i.id) > 0 OR t.starter"
            ' ORDER BY n DESC, t.name COLLATE "C" LIMIT $3',
            viewer_id,
            prefix,
            limit,
        )
        return [TagCount(name=row[0], count=row[1]) for row in rows]

    async def has_starter_tags(self) -> bool:
        return bool(await self._db.fetchval("SELECT EXISTS (SELECT 1 FROM tags WHERE starter)"))

    async def add_starter_tags(self, tags: Sequence[str]) -> None:
        await self._db.execute(
            "INSERT INTO tags (name, starter) SELECT name, TRUE FROM unnest($1::text[]) AS name"
            " ON CONFLICT (name) DO UPDATE SET starter = TRUE",
            sorted(tags),
        )


async def _insert_picture(conn: asyncpg.Connection[Any], picture: NewPicture, now: float) -> None:
    """Insert a picture's rows, unless they exist (then the stored files are the same)."""
    await conn.execute(
        f"INSERT INTO pictures ({PICTURE_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (sha256) DO NOTHING",
        *picture_values(picture, now),
    )
    await conn.execute(
        f"INSERT INTO picture_previews ({PREVIEW_COLUMNS}) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (sha256) DO NOTHING",
        *preview_values(picture),
    )


async def _replace_tags(conn: asyncpg.Connection[Any], item_id: int, tags: Sequence[str]) -> None:
    """Replace an item's rows in ``item_tags``; the caller writes its ``tags_text``."""
    await conn.execute("DELETE FROM item_tags WHERE item_id = $1", item_id)
    if tags:
        # Sorted: two transactions adding the same new tags insert them in the same order, so
        # neither waits for a tag the other holds while holding one it wants.
        await conn.execute(
            "INSERT INTO tags (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
            sorted(tags),
        )
        await conn.execute(
            "INSERT INTO item_tags (item_id, tag_id)"
            " SELECT $1, id FROM tags WHERE name = ANY($2::text[])",
            item_id,
            list(tags),
        )
