"""Provides the catalogue messages: uploads, items, browse and search, tags, watching.

Listings are streams of batches: :class:`Browse` without a cursor returns the first
:class:`ItemBatch` (with the total count); the client asks for the next one by sending the same
:class:`Browse` again with the cursor of the previous batch. Cursors are opaque and bound to the
filters, the sort order and the user, so they cannot be replayed with anything else.

Uploads are chunked and resumable, keyed by the SHA-256 of the whole file: :class:`BeginUpload`
answers where to continue (an earlier partial upload of the same file by the same user resumes),
:class:`UploadChunk` appends at an offset and acknowledges the new end, :class:`FinishUpload`
verifies the whole file and lists the item.

Pictures are addressed by content: every :class:`ItemCard` names its thumbnail's SHA-256 and
size, and :class:`ItemDetail` its preview's, so a client keeps the pictures it was sent and asks
only for those it lacks. A listing request says how pictures come (:class:`PictureMode`): inline
on every card (the default, as clients before content addressing expect), inline only when this
connection has not been sent them yet (a cold client still needs one round trip per batch), or
never (a client with a warm cache). :class:`GetPictures` then fetches the missing ones of one
batch in one request, by item id: the server checks that the caller may see each item, exactly
as for :class:`GetItem`, so a hash never opens a picture to someone who may not see its item.
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


class PictureMode(enum.StrEnum):
    """How the pictures of a reply's cards (or of an item's detail) come.

    Attributes:
        INLINE: Every card carries its picture's bytes (what clients before content-addressed
            pictures expect, hence the default).
        UNSENT: Bytes only for pictures this connection has not been sent yet (the server keeps
            a bounded record per connection); the others by hash and size only. A client that
            keeps what it was sent in memory needs no second round trip.
        HASHES: Hashes and sizes only; the client fetches those it lacks with
            :class:`GetPictures`. For a client whose picture cache outlives the connection.
    """

    INLINE = "inline"
    UNSENT = "unsent"
    HASHES = "hashes"


class PictureKind(enum.StrEnum):
    """Which derivative of an item's picture: the listing's thumbnail or the item's preview."""

    THUMBNAIL = "thumbnail"
    PREVIEW = "preview"


class ItemCard(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One item in a listing: its fields and its thumbnail, by content hash and maybe inline.

    Attributes:
        thumbnail: WebP, longest side at most 256 px, no metadata; ``None`` when the request's
            :class:`PictureMode` left it out (fetch it with :class:`GetPictures`).
        thumbnail_sha256: Lower-case hex SHA-256 of the thumbnail's bytes.
        thumbnail_size: Its size in bytes.
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
    thumbnail: bytes | None = None
    thumbnail_sha256: str = ""
    thumbnail_size: int = 0
    score: float | None = None
    looks_like: str | None = None


class ItemDetail(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Everything about one item, with its preview picture.

    Attributes:
        format: ``"JPEG"``, ``"PNG"`` or ``"WEBP"``: the original's format.
        sha256: The SHA-256 of the original as uploaded.
        size_bytes: The size of the original as uploaded.
        preview: WebP, longest side at most 1280 px, no metadata; ``None`` when the request's
            :class:`PictureMode` left it out.
        preview_sha256: Lower-case hex SHA-256 of the preview's bytes.
        preview_size: Its size in bytes.
        thumbnail: WebP, longest side at most 256 px, no metadata; ``None`` when left out.
        thumbnail_sha256: As :attr:`ItemCard.thumbnail_sha256`.
        thumbnail_size: As :attr:`ItemCard.thumbnail_size`.
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
    preview: bytes | None = None
    preview_sha256: str = ""
    preview_size: int = 0
    thumbnail: bytes | None = None
    thumbnail_sha256: str = ""
    thumbnail_size: int = 0


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
    """Fetch one item with its preview (see :class:`PictureMode` for how its pictures come)."""

    item_id: ItemId
    pictures: PictureMode = PictureMode.INLINE


class ItemInfo(Reply):
    """One item in full."""

    item: ItemDetail


#: Thumbnails one :class:`GetPictures` may ask for: a few batches' worth.
MAX_THUMBNAILS_PER_REQUEST = 200
#: Previews one :class:`GetPictures` may ask for (each up to some hundred KB).
MAX_PREVIEWS_PER_REQUEST = 8


class GetPictures(Request):
    """Fetch the thumbnails (or previews) of items, e.g. those a batch's cards name by hash only.

    The server answers for the items the caller may see (as :class:`GetItem` would), in the
    order asked; it never looks a picture up by its hash alone.

    Attributes:
        item_ids: At most :data:`MAX_THUMBNAILS_PER_REQUEST` (thumbnails) or
            :data:`MAX_PREVIEWS_PER_REQUEST` (previews) ids.
    """

    item_ids: Annotated[
        list[ItemId], msgspec.Meta(min_length=1, max_length=MAX_THUMBNAILS_PER_REQUEST)
    ]
    kind: PictureKind = PictureKind.THUMBNAIL


class Picture(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One item's picture: its content hash and bytes (WebP)."""

    item_id: int
    sha256: str
    data: bytes


class Pictures(Reply):
    """The pictures asked for by a :class:`GetPictures`.

    Attributes:
        pictures: In the order asked, for the items the caller may see.
        missing: Ids of items that do not exist or that the caller may not see.
        more: Ids not answered because the reply reached its size limit; ask again for them.
    """

    pictures: list[Picture]
    missing: list[int] = msgspec.field(default_factory=list)
    more: list[int] = msgspec.field(default_factory=list)


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
        pictures: How the cards' thumbnails come (see :class:`PictureMode`).
    """

    filters: ListingFilters = msgspec.field(default_factory=ListingFilters)
    sort: SortOrder = SortOrder.NEWEST
    limit: BatchLimit | None = None
    cursor: Cursor | None = None
    pictures: PictureMode = PictureMode.INLINE


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
    GetPictures,
    Pictures,
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
