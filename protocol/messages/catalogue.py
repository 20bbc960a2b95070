"""Provides the catalogue messages: uploads, items, browse and search, tags, watching.

Listings are streams of batches: :class:`Browse` without a cursor returns the first
:class:`ItemBatch` (with the total count); the client asks for the next one by sending the same
:class:`Browse` again with the cursor of the previous batch. Cursors are opaque and bound to the
filters, the sort order and the user, so they cannot be replayed with anything else.

Uploads are chunked and resumable, keyed by the SHA-256 of the whole file: :class:`BeginUpload`
answers where to continue (an earlier partial upload of the same file by the same user resumes),
:class:`UploadChunk` appends at an offset and acknowledges the new end, :class:`FinishUpload`
verifies the whole file and lists the item.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from protocol.errors import ErrorCode
from protocol.messages.base import Message, Reply, Request

#: Lower-case hex SHA-256 of a whole file.
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
#: The server's name for an upload in progress.
UploadId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{32}$")]
ItemId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
#: Integer minor units of the server's currency (cents for EUR); capped far above any real price.
PriceCents = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=10**9)]
Title = Annotated[str, msgspec.Meta(max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
#: A tag as the client typed it; the server normalises it (see the catalogue's tag rules).
RawTag = Annotated[str, msgspec.Meta(max_length=64)]
TagList = Annotated[list[RawTag], msgspec.Meta(max_length=20)]
#: Opaque, signed listing position; only ever copied from an :class:`ItemBatch`.
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
BatchLimit = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class SortOrder(enum.StrEnum):
    """How a listing is ordered; ties are broken by item id so the order is total."""

    NEWEST = "newest"
    PRICE_UP = "price_up"
    PRICE_DOWN = "price_down"


class ItemCard(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One item in a listing: its fields and its thumbnail inline.

    Attributes:
        thumbnail: WebP, longest side at most 256 px, no metadata.
        score: Similarity to the example picture in similar-image results, else ``None``.
        looks_like: In text search results, why the item matched when the seller's own words
            do not hold the search words: the name of what the image model sees in the picture
            that the words name ("golden retriever" for "dog"); else ``None``.
    """

    id: int
    title: str
    price_cents: int
    stock: int
    public: bool
    owner_id: int
    owner_name: str
    tags: list[str]
    width: int
    height: int
    created_at: float
    thumbnail: bytes
    score: float | None = None
    looks_like: str | None = None


class ItemDetail(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Everything about one item, with its preview picture.

    Attributes:
        format: ``"JPEG"``, ``"PNG"`` or ``"WEBP"``: the original's format.
        sha256: The SHA-256 of the original as uploaded.
        size_bytes: The size of the original as uploaded.
        preview: WebP, longest side at most 1280 px, no metadata.
        thumbnail: WebP, longest side at most 256 px, no metadata.
    """

    id: int
    title: str
    description: str
    price_cents: int
    stock: int
    public: bool
    owner_id: int
    owner_name: str
    tags: list[str]
    width: int
    height: int
    format: str
    sha256: str
    size_bytes: int
    created_at: float
    updated_at: float
    preview: bytes
    thumbnail: bytes


class ItemMetadata(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the seller says about a picture being uploaded."""

    title: Title
    description: Description = ""
    price_cents: PriceCents = 0
    stock: Stock = 1
    tags: TagList = msgspec.field(default_factory=list)
    public: bool = True


class ListingFilters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which items a listing shows; every filter given must hold (AND).

    Attributes:
        tags: Items carrying all of these tags.
        text: Words to find in title, description and tags; the last word may be a prefix.
        mine: Only the caller's own items.
        owner_id: Only this seller's items (what the caller may see of them).
        min_price_cents: Lowest price, inclusive.
        max_price_cents: Highest price, inclusive.
        in_stock: Only items with stock left.
    """

    tags: TagList = msgspec.field(default_factory=list)
    text: Annotated[str, msgspec.Meta(max_length=256)] = ""
    mine: bool = False
    owner_id: ItemId | None = None
    min_price_cents: PriceCents | None = None
    max_price_cents: PriceCents | None = None
    in_stock: bool = False


class TagCount(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A tag and how many items the caller can see carry it."""

    name: str
    count: int


class DeleteResult(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The outcome for one id of a bulk delete; ``error`` is ``None`` when it was deleted."""

    item_id: int
    error: ErrorCode | None = None
    message: str = ""


# -- uploads ---------------------------------------------------------------------------------


class BeginUpload(Request):
    """Start, or resume, the upload of one file.

    Attributes:
        sha256: The SHA-256 of the whole file, computed by the client.
        size: The file's size in bytes; checked against the server's limit before any byte.
        metadata: The item's listing; a resumed upload takes the latest metadata sent.
    """

    sha256: Sha256Hex
    size: Annotated[int, msgspec.Meta(ge=0)]
    metadata: ItemMetadata


class UploadState(Reply):
    """Where an upload stands.

    Attributes:
        upload_id: Name the upload in chunks; empty when ``existing`` is set.
        offset: Bytes the server holds; send the next chunk from here.
        size: The declared size of the file.
        chunk_bytes: The largest chunk the server accepts.
        existing: The caller already sells this exact picture: nothing to upload.
    """

    upload_id: str
    offset: int
    size: int
    chunk_bytes: int
    existing: ItemCard | None = None


class UploadChunk(Request):
    """Bytes of an upload, starting at ``offset`` (which must be the bytes received so far)."""

    upload_id: UploadId
    offset: Annotated[int, msgspec.Meta(ge=0)]
    data: bytes


class ChunkAck(Reply):
    """The chunk is stored; ``offset`` is the number of bytes the server now holds."""

    upload_id: str
    offset: int


class FinishUpload(Request):
    """All bytes are sent: verify the file and list the item."""

    upload_id: UploadId


class CancelUpload(Request):
    """Discard an upload in progress and the bytes received for it."""

    upload_id: UploadId


class ItemCreated(Reply):
    """The item listed by an upload.

    Attributes:
        item: The new item, or the caller's existing item with the same picture.
        duplicate: ``True`` when nothing new was listed because the caller already sells it.
        warnings: Things the seller may want to know (e.g. a small picture).
    """

    item: ItemCard
    duplicate: bool = False
    warnings: list[str] = msgspec.field(default_factory=list)


# -- items -----------------------------------------------------------------------------------


class GetItem(Request):
    """Fetch one item with its preview."""

    item_id: ItemId


class ItemInfo(Reply):
    """One item in full."""

    item: ItemDetail


class GetOriginal(Request):
    """Fetch (a range of) the original picture.

    Attributes:
        offset: First byte wanted.
        length: Bytes wanted; 0 means as many as one reply may carry.
    """

    item_id: ItemId
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    length: Annotated[int, msgspec.Meta(ge=0)] = 0


class OriginalData(Reply):
    """A range of the original picture.

    The owner gets the file exactly as uploaded; everyone else gets it without metadata
    (``stripped``), so ``total``, ``sha256`` and the bytes describe the file actually served.
    """

    item_id: int
    offset: int
    total: int
    format: str
    sha256: str
    stripped: bool
    data: bytes


class EditItem(Request):
    """Change an item's listing; fields left ``None`` are kept. The picture cannot change."""

    item_id: ItemId
    title: Title | None = None
    description: Description | None = None
    price_cents: PriceCents | None = None
    stock: Stock | None = None
    tags: TagList | None = None
    public: bool | None = None


class ItemUpdated(Reply):
    """The item after an edit."""

    item: ItemCard


class DeleteItems(Request):
    """Delete many items; each id gets its own result."""

    item_ids: Annotated[list[ItemId], msgspec.Meta(min_length=1, max_length=1000)]


class ItemsDeleted(Reply):
    """One result per requested id, in request order."""

    results: list[DeleteResult]


# -- listings --------------------------------------------------------------------------------


class Browse(Request):
    """Browse and search in one request; send it again with ``cursor`` for the next batch.

    Attributes:
        limit: Items per batch; the server's default when ``None``, at most its maximum.
        cursor: From the previous :class:`ItemBatch`; filters and sort must be the same.
    """

    filters: ListingFilters = msgspec.field(default_factory=ListingFilters)
    sort: SortOrder = SortOrder.NEWEST
    limit: BatchLimit | None = None
    cursor: Cursor | None = None


class ItemBatch(Reply):
    """One batch of a listing.

    Attributes:
        cursor: Ask for the next batch with it; ``None`` when the listing is complete.
        total: How many items match, with the first batch only.
    """

    items: list[ItemCard]
    cursor: str | None = None
    total: int | None = None


class ListTags(Request):
    """Tags with how many visible items carry each, most used first; a prefix autocompletes."""

    prefix: Annotated[str, msgspec.Meta(max_length=32)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class Tags(Reply):
    """Tags and their counts of items the caller can see."""

    tags: list[TagCount]


# -- live updates ----------------------------------------------------------------------------


class WatchCatalogue(Request):
    """Be told about items added, changed and removed anywhere in the catalogue."""


class UnwatchCatalogue(Request):
    """Stop :class:`WatchCatalogue`."""


class WatchItems(Request):
    """Be told when these items change or are removed."""

    item_ids: Annotated[list[ItemId], msgspec.Meta(min_length=1, max_length=1000)]


class Watching(Reply):
    """The ids now watched: those of the request the caller may see."""

    item_ids: list[int]


class UnwatchItems(Request):
    """Stop watching these items."""

    item_ids: Annotated[list[ItemId], msgspec.Meta(min_length=1, max_length=1000)]


MESSAGES: tuple[type[Message], ...] = (
    BeginUpload,
    UploadState,
    UploadChunk,
    ChunkAck,
    FinishUpload,
    CancelUpload,
    ItemCreated,
    GetItem,
    ItemInfo,
    GetOriginal,
    OriginalData,
    EditItem,
    ItemUpdated,
    DeleteItems,
    ItemsDeleted,
    Browse,
    ItemBatch,
    ListTags,
    Tags,
    WatchCatalogue,
    UnwatchCatalogue,
    WatchItems,
    Watching,
    UnwatchItems,
)
