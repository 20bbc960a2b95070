"""Provides the item rows: lookup, access rules, insert, update and delete.

Access rules in one place: an item is *seen* by everyone when public and by its owner always;
admins may act on any item by id (moderation) but, like everyone, find other people's private
items in no listing. Only the owner or an admin *changes* or deletes an item. An item someone
may not see is reported as not found, never as forbidden, so ids do not leak existence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from backend.accounts.service import Principal
from backend.catalogue.tags import set_item_tags
from backend.catalogue.validation import Listing
from backend.storage.database import Database
from protocol.errors import Forbidden, NotFound

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ItemRow:
    """The fields of an item that access checks and events need."""

    id: int
    owner_id: int
    public: bool
    sha256: str
    title: str
    price_cents: int
    stock: int


_ITEM_COLUMNS = "id, owner_id, public, sha256, title, price_cents, stock"


def _item_row(row: aiosqlite.Row) -> ItemRow:
    return ItemRow(
        id=int(row["id"]),
        owner_id=int(row["owner_id"]),
        public=bool(row["public"]),
        sha256=str(row["sha256"]),
        title=str(row["title"]),
        price_cents=int(row["price_cents"]),
        stock=int(row["stock"]),
    )


def can_see(principal: Principal, item: ItemRow) -> bool:
    """Whether ``principal`` may fetch ``item`` by id."""
    return item.public or item.owner_id == principal.user_id or principal.is_admin


def can_change(principal: Principal, item: ItemRow) -> bool:
    """Whether ``principal`` may edit or delete ``item``."""
    return item.owner_id == principal.user_id or principal.is_admin


def not_found(item_id: int) -> NotFound:
    """The error for an item that does not exist or that the caller may not see."""
    return NotFound(f"There is no item {item_id}")


async def load_items(db: Database, item_ids: Sequence[int]) -> dict[int, ItemRow]:
    """Return the rows of the items that exist among ``item_ids``."""
    if not item_ids:
        return {}
    marks = ", ".join("?" * len(item_ids))
    rows = await db.fetchall(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE id IN ({marks})", tuple(item_ids)
    )
    return {item.id: item for item in map(_item_row, rows)}


async def item_for(db: Database, principal: Principal, item_id: int, *, change: bool) -> ItemRow:
    """Return the item if ``principal`` may see it (and change it, with ``change``).

    Raises:
        NotFound: no such item, or one the principal may not see.
        Forbidden: the principal sees it but may not change it.
    """
    item = (await load_items(db, [item_id])).get(item_id)
    if item is None or not can_see(principal, item):
        raise not_found(item_id)
    if change and not can_change(principal, item):
        raise Forbidden("Only the seller can change or delete this item")
    return item


async def owned_item_with_picture(db: Database, owner_id: int, sha256: str) -> int | None:
    """The id of ``owner_id``'s item showing picture ``sha256``, if there is one."""
    row = await db.fetchone(
        "SELECT id FROM items WHERE owner_id = ? AND sha256 = ?", (owner_id, sha256)
    )
    return int(row[0]) if row else None


async def insert_item(
    conn: aiosqlite.Connection, owner_id: int, sha256: str, listing: Listing, clock: Clock
) -> int:
    """Insert an item and its tags inside the caller's write transaction; return its id.

    ``created_at`` never goes below the newest item's, even if the wall clock steps back, so
    a newest-first listing in progress never receives an item added after it started.
    """
    cursor = await conn.execute("SELECT MAX(created_at) FROM items")
    newest = await cursor.fetchone()
    await cursor.close()
    now = max(clock(), float(newest[0]) if newest and newest[0] is not None else 0.0)
    cursor = await conn.execute(
        "INSERT INTO items (owner_id, title, description, price_cents, stock, public, sha256,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            owner_id,
            listing.title,
            listing.description,
            listing.price_cents,
            listing.stock,
            int(listing.public),
            sha256,
            now,
            now,
        ),
    )
    item_id = cursor.lastrowid
    await cursor.close()
    assert item_id is not None
    await set_item_tags(conn, item_id, listing.tags)
    return item_id


async def update_item(
    conn: aiosqlite.Connection,
    item_id: int,
    fields: dict[str, object],
    tags: Sequence[str] | None,
    clock: Clock = time.time,
) -> bool:
    """Change an item's columns and, if given, its tags; return whether the item exists.

    Runs inside the caller's write transaction. Column names come from trusted code only.
    """
    assignments = "".join(f"{name} = ?, " for name in fields)
    cursor = await conn.execute(
        f"UPDATE items SET {assignments}updated_at = ? WHERE id = ?",
        (*fields.values(), clock(), item_id),
    )
    changed = cursor.rowcount > 0
    await cursor.close()
    if changed and tags is not None:
        await set_item_tags(conn, item_id, tags)
    return changed


async def delete_items(conn: aiosqlite.Connection, item_ids: Sequence[int]) -> None:
    """Delete items (their tags and text index entries follow) in the caller's transaction."""
    if item_ids:
        marks = ", ".join("?" * len(item_ids))
        await conn.execute(f"DELETE FROM items WHERE id IN ({marks})", tuple(item_ids))
