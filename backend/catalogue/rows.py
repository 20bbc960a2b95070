"""Provides the columns catalogue queries share, the records made of their rows, and rows to write.

Both engines select these columns in this order and hand the rows here, so each record is made
of a row in one place whatever the engine. Rows are unpacked by position: ``row["name"]``
compares the name with every column's, and for a batch of cards that took close to half of the
time spent making them.

Values are used as the drivers return them (both give int, str, float and bytes for these
columns), except where the engines differ:

* booleans: SQLite keeps them as 0/1, so they pass through ``bool()`` (a no-op on PostgreSQL's);
* tags: each engine passes a ``tag_list`` that turns its tags column (SQLite's
  ``group_concat`` string, PostgreSQL's array) into a list sorted by name.

Cards and details name their pictures (recorded hash and size) and carry no bytes: listings
never read the sealed picture columns; :class:`~backend.catalogue.card_pictures.CardPictures`
adds the bytes a reply inlines, from memory or with one query (:data:`DERIVATIVE_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

import msgspec

from backend.catalogue.repository import (
    DerivativeKind,
    DerivativeRow,
    ItemRow,
    NewPicture,
    PictureInfo,
    UploadRow,
)
from protocol.messages.catalogue import ItemCard, ItemDetail, ItemMetadata

#: A result row of either engine (an ``aiosqlite.Row`` or an ``asyncpg.Record``), read by position.
Row: TypeAlias = Iterable[Any]
#: Turns an engine's tags column into the item's tags, sorted by name.
TagList: TypeAlias = Callable[[Any], list[str]]

#: The columns of ``items`` that :func:`item_from_row` reads, in its order.
ITEM_COLUMNS: Final = "id, owner_id, public, sha256, title, price_cents, stock"
#: The columns of a card but its tags, in the order :func:`cards_from_rows` unpacks them; each
#: engine appends its tags column. Listings may order by any of them.
CARD_COLUMNS: Final = (
    "i.id, i.title, i.price_cents, i.stock, i.public, i.owner_id, u.username AS owner_name,"
    " p.width, p.height, i.created_at, p.thumbnail_sha256, p.thumbnail_size"
)
#: Where a card's columns other than the item's (``items i``) come from.
CARD_JOINS: Final = "JOIN users u ON u.id = i.owner_id JOIN pictures p ON p.sha256 = i.sha256"
#: The columns of an item's detail but its tags, in the order :func:`detail_from_row` unpacks
#: them; each engine appends its tags column.
DETAIL_COLUMNS: Final = (
    "i.id, i.title, i.description, i.price_cents, i.stock, i.public, i.owner_id, u.username,"
    " p.width, p.height, p.format, i.sha256, p.size_bytes, i.created_at, i.updated_at,"
    " pp.preview_sha256, pp.preview_size, p.thumbnail_sha256, p.thumbnail_size"
)
#: Where the detail's columns come from.
DETAIL_FROM: Final = f"items i {CARD_JOINS} JOIN picture_previews pp ON pp.sha256 = i.sha256"
#: The columns and tables an item's stored thumbnail or preview is read from (``items i``,
#: then the derivative's table), as :func:`derivative_from_row` reads them.
DERIVATIVE_COLUMNS: Final[dict[DerivativeKind, str]] = {
    "thumbnail": "i.id, i.owner_id, i.public, i.sha256, p.thumbnail_sha256, p.thumbnail"
    " FROM items i JOIN pictures p ON p.sha256 = i.sha256",
    "preview": "i.id, i.owner_id, i.public, i.sha256, pp.preview_sha256, pp.preview"
    " FROM items i JOIN picture_previews pp ON pp.sha256 = i.sha256",
}
#: Where each derivative's digest is recorded: its table and column names.
DIGEST_COLUMNS: Final[dict[DerivativeKind, tuple[str, str, str]]] = {
    "thumbnail": ("pictures", "thumbnail_sha256", "thumbnail_size"),
    "preview": ("picture_previews", "preview_sha256", "preview_size"),
}
#: The columns of ``pictures`` that :func:`picture_values` fills, in its order.
PICTURE_COLUMNS: Final = (
    "sha256, format, width, height, orientation, size_bytes, clean_sha256, clean_size,"
    " created_at, thumbnail, thumbnail_sha256, thumbnail_size"
)
#: The columns of ``picture_previews`` that :func:`preview_values` fills, in its order.
PREVIEW_COLUMNS: Final = "sha256, preview, preview_sha256, preview_size"
#: The columns of ``pictures`` that :func:`picture_info_from_row` reads, in its order.
PICTURE_INFO_COLUMNS: Final = "format, width, height, orientation, size_bytes, clean_sha256"
#: The columns of ``uploads`` that :func:`upload_from_row` reads and :func:`upload_values`
#: fills (with ``created_at`` after them), in their order.
UPLOAD_COLUMNS: Final = "id, owner_id, sha256, size, metadata"

_metadata_decoder: Final = msgspec.msgpack.Decoder(ItemMetadata)


def item_from_row(row: Row) -> ItemRow:
    """The item of a row of :data:`ITEM_COLUMNS`."""
    item_id, owner_id, public, sha256, title, price_cents, stock = row
    return ItemRow(
        id=item_id,
        owner_id=owner_id,
        public=bool(public),
        sha256=sha256,
        title=title,
        price_cents=price_cents,
        stock=stock,
    )


def cards_from_rows(
    rows: Iterable[Row],
    tag_list: TagList,
    looks_like: Mapping[int, str] | None = None,
) -> list[ItemCard]:
    """The cards of rows of :data:`CARD_COLUMNS` and a tags column, in the rows' order.

    Thumbnails are named, not read: ``""`` and 0 where no digest is recorded yet.

    Args:
        looks_like: For rows that end with one more column, the class id of what the image model
            sees in the picture (each engine's ``seen_class``): the name each id is shown as.
    """
    cards: list[ItemCard] = []
    for row in rows:
        seen: str | None = None
        if looks_like is not None:
            *row, class_id = row
            seen = looks_like[class_id]
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
            thumbnail_sha256,
            thumbnail_size,
            tag_names,
        ) = row
        cards.append(
            ItemCard(
                id=item_id,
                title=title,
                price_cents=price_cents,
                stock=stock,
                public=bool(public),
                owner_id=owner_id,
                owner_name=owner_name,
                tags=tag_list(tag_names),
                width=width,
                height=height,
                created_at=created_at,
                thumbnail_sha256=thumbnail_sha256 or "",
                thumbnail_size=thumbnail_size or 0,
                looks_like=seen,
            )
        )
    return cards


def detail_from_row(row: Row, tag_list: TagList) -> ItemDetail:
    """The detail of a row of :data:`DETAIL_COLUMNS` and a tags column, pictures named only."""
    (
        item_id,
        title,
        description,
        price_cents,
        stock,
        public,
        owner_id,
        owner_name,
        width,
        height,
        picture_format,
        sha256,
        size_bytes,
        created_at,
        updated_at,
        preview_sha256,
        preview_size,
        thumbnail_sha256,
        thumbnail_size,
        tag_names,
    ) = row
    return ItemDetail(
        id=item_id,
        title=title,
        description=description,
        price_cents=price_cents,
        stock=stock,
        public=bool(public),
        owner_id=owner_id,
        owner_name=owner_name,
        tags=tag_list(tag_names),
        width=width,
        height=height,
        format=picture_format,
        sha256=sha256,
        size_bytes=size_bytes,
        created_at=created_at,
        updated_at=updated_at,
        preview_sha256=preview_sha256 or "",
        preview_size=preview_size or 0,
        thumbnail_sha256=thumbnail_sha256 or "",
        thumbnail_size=thumbnail_size or 0,
    )


def derivative_from_row(row: Row) -> DerivativeRow:
    """The stored derivative of a row of one of :data:`DERIVATIVE_COLUMNS`."""
    item_id, owner_id, public, picture_sha256, digest, data = row
    return DerivativeRow(
        item_id=item_id,
        owner_id=owner_id,
        public=bool(public),
        picture_sha256=picture_sha256,
        digest=digest,
        data=bytes(data),
    )


def picture_values(picture: NewPicture, now: float) -> tuple[Any, ...]:
    """The :data:`PICTURE_COLUMNS` of a picture stored at ``now``."""
    return (
        picture.files.sha256,
        picture.format,
        picture.width,
        picture.height,
        picture.orientation,
        picture.size_bytes,
        picture.files.clean_sha256,
        picture.clean_size,
        now,
        picture.thumbnail,
        picture.thumbnail_sha256 or None,
        picture.thumbnail_size if picture.thumbnail_sha256 else None,
    )


def preview_values(picture: NewPicture) -> tuple[Any, ...]:
    """The :data:`PREVIEW_COLUMNS` of a new picture's preview."""
    return (
        picture.files.sha256,
        picture.preview,
        picture.preview_sha256 or None,
        picture.preview_size if picture.preview_sha256 else None,
    )


def picture_info_from_row(row: Row) -> PictureInfo:
    """What a row of :data:`PICTURE_INFO_COLUMNS` records about a picture."""
    picture_format, width, height, orientation, size_bytes, clean_sha256 = row
    return PictureInfo(
        format=picture_format,
        width=width,
        height=height,
        orientation=orientation,
        size_bytes=size_bytes,
        clean_sha256=clean_sha256,
    )


def metadata_to_bytes(metadata: ItemMetadata) -> bytes:
    """How an upload's metadata is stored (msgpack), on either engine."""
    return msgspec.msgpack.encode(metadata)


def upload_from_row(row: Row) -> UploadRow:
    """The upload of a row of :data:`UPLOAD_COLUMNS`."""
    upload_id, owner_id, sha256, size, metadata = row
    return UploadRow(
        id=upload_id,
        owner_id=owner_id,
        sha256=sha256,
        size=size,
        metadata=_metadata_decoder.decode(metadata),
    )


def upload_values(upload: UploadRow, created_at: float) -> tuple[Any, ...]:
    """The :data:`UPLOAD_COLUMNS` and then ``created_at`` of a new upload."""
    return (
        upload.id,
        upload.owner_id,
        upload.sha256,
        upload.size,
        metadata_to_bytes(upload.metadata),
        created_at,
    )
