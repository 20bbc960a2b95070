"""Provides the rendering of item rows into the protocol's ItemCard and ItemDetail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import aiosqlite

from backend.catalogue.filters import VISIBLE_SQL
from backend.catalogue.tags import tags_of
from backend.storage.database import Database
from protocol.messages.catalogue import ItemCard, ItemDetail

#: Separates tag names in :data:`CARD_COLUMNS`' ``tag_names``; tags never hold a space.
_TAG_SEPARATOR: Final = " "
#: Columns of a card; listings select these and may order by any of them. The item's tags come
#: in the same statement (a correlated subquery on item_tags' primary key, run only for the rows
#: returned): one reader round trip per batch instead of two, and one consistent snapshot.
#: :func:`cards_from_rows` unpacks them by position, in this order.
CARD_COLUMNS: Final = (
    "i.id, i.title, i.price_cents, i.stock, i.public, i.owner_id, u.username AS owner_name,"
    " p.width, p.height, i.created_at, p.thumbnail,"
    f" (SELECT group_concat(t.name, '{_TAG_SEPARATOR}') FROM item_tags it"
    " JOIN tags t ON t.id = it.tag_id WHERE it.item_id = i.id) AS tag_names"
)
#: Where a card's columns come from.
CARD_FROM: Final = (
    "items i JOIN users u ON u.id = i.owner_id JOIN pictures p ON p.sha256 = i.sha256"
)
#: SQLite's default limit on bound parameters is far higher; this keeps statements small.
_ID_BATCH: Final = 500


def cards_from_rows(
    rows: Sequence[aiosqlite.Row], scores: Mapping[int, float] | None = None
) -> list[ItemCard]:
    """Return the cards of rows selected with :data:`CARD_COLUMNS`, in the rows' order.

    Rows are unpacked by position: ``row["name"]`` compares the name with every column's, and
    a batch would do that some 300 times, close to half of what this function took.
    """
    cards: list[ItemCard] = []
    for row in rows:
        (
            item_id,
            title,
            price_cents,
            stock,
            public,
            owner_id,
            owner_name,
            width,
            height,
            created_at,
            thumbnail,
            tag_names,
        ) = row
        cards.append(
            ItemCard(
                id=int(item_id),
                title=str(title),
                price_cents=int(price_cents),
                stock=int(stock),
                public=bool(public),
                owner_id=int(owner_id),
                owner_name=str(owner_name),
                tags=_tag_list(tag_names),
                width=int(width),
                height=int(height),
                created_at=float(created_at),
                thumbnail=bytes(thumbnail),
                score=scores.get(int(item_id)) if scores is not None else None,
            )
        )
    return cards


def _tag_list(tag_names: str | None) -> list[str]:
    """The tags of a card's ``tag_names`` column, sorted by name as :func:`tags_of` returns them.

    group_concat's order is unspecified, so they are sorted here; tags are ASCII, so Python's
    order is SQLite's BINARY order.
    """
    return sorted(tag_names.split(_TAG_SEPARATOR)) if tag_names else []


async def cards_by_id(
    db: Database,
    item_ids: Sequence[int],
    *,
    viewer_id: int | None,
    scores: Mapping[int, float] | None = None,
) -> list[ItemCard]:
    """Return the cards of ``item_ids`` in the given order, skipping ids that do not exist.

    Args:
        viewer_id: Skip items this user may not see; ``None`` only for callers that checked
            access themselves (an owner's or admin's own action).
        scores: Put into each card's ``score`` (similar-image results).
    """
    rows: dict[int, aiosqlite.Row] = {}
    unique = list(dict.fromkeys(item_ids))
    for start in range(0, len(unique), _ID_BATCH):
        batch = unique[start : start + _ID_BATCH]
        marks = ", ".join("?" * len(batch))
        condition = f"i.id IN ({marks})"
        params: list[object] = list(batch)
        if viewer_id is not None:
            condition += f" AND {VISIBLE_SQL}"
            params.append(viewer_id)
        for row in await db.fetchall(
            f"SELECT {CARD_COLUMNS} FROM {CARD_FROM} WHERE {condition}", params
        ):
            rows[int(row["id"])] = row
    ordered = [rows[item_id] for item_id in unique if item_id in rows]
    return cards_from_rows(ordered, scores)


async def item_detail(db: Database, item_id: int) -> ItemDetail | None:
    """Return everything about one item, or ``None``; the caller checks access."""
    row = await db.fetchone(
        "SELECT i.id, i.title, i.description, i.price_cents, i.stock, i.public, i.owner_id,"
        " u.username AS owner_name, p.width, p.height, p.format, i.sha256, p.size_bytes,"
        " i.created_at, i.updated_at, pp.preview, p.thumbnail"
        " FROM items i JOIN users u ON u.id = i.owner_id JOIN pictures p ON p.sha256 = i.sha256"
        " JOIN picture_previews pp ON pp.sha256 = i.sha256 WHERE i.id = ?",
        (item_id,),
    )
    if row is None:
        return None
    tags = await tags_of(db, [item_id])
    return ItemDetail(
        id=int(row["id"]),
        title=str(row["title"]),
        description=str(row["description"]),
        price_cents=int(row["price_cents"]),
        stock=int(row["stock"]),
        public=bool(row["public"]),
        owner_id=int(row["owner_id"]),
        owner_name=str(row["owner_name"]),
        tags=tags.get(item_id, []),
        width=int(row["width"]),
        height=int(row["height"]),
        format=str(row["format"]),
        sha256=str(row["sha256"]),
        size_bytes=int(row["size_bytes"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        preview=bytes(row["preview"]),
        thumbnail=bytes(row["thumbnail"]),
    )
