"""Provides the catalogue's storage interfaces: what the services ask of a database.

Three repositories, each with a SQLite and a PostgreSQL implementation
(:mod:`backend.catalogue.repositories` picks one):

* :class:`CatalogueRepository`: items, their tags, listings, counts and text search;
* :class:`PictureRepository`: the rows of stored pictures (the files are the blob store's);
* :class:`UploadRepository`: uploads in progress (their bytes are the upload area's).

Every method is one atomic unit of work that owns its transaction. Listings return the
protocol's :class:`ItemCard` and :class:`ItemDetail` as they are sent, so a batch of cards is
built once, straight from the rows (by :mod:`backend.catalogue.rows`, for both engines).

The errors below are the same whichever engine raised them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from backend.catalogue.cursors import Position
from backend.catalogue.filters import Criteria, TextMatch
from backend.catalogue.validation import Listing
from protocol.messages.catalogue import ItemCard, ItemDetail, ItemMetadata, SortOrder, TagCount

#: Which derivative of a picture: the listing's thumbnail or the item screen's preview.
DerivativeKind = Literal["thumbnail", "preview"]

# -- records ---------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class StoredFiles:
    """The two files of a picture: the original and the copy served to others."""

    sha256: str
    clean_sha256: str


@dataclass(frozen=True, slots=True)
class NewPicture:
    """The rows of a picture whose files were just stored.

    Attributes:
        width: As people see it (EXIF orientation applied).
        orientation: The EXIF orientation of the stored pixels (1-8).
        thumbnail: WebP, 256 px, read by every listing.
        preview: WebP, 1280 px, read by the item detail.
        thumbnail_sha256: The plain thumbnail's SHA-256 and size, recorded beside it so that
            listings name it without opening it; ``""`` and 0 leave them to be filled in
            when it is first opened.
        preview_sha256: The same for the preview.
    """

    files: StoredFiles
    format: str
    width: int
    height: int
    orientation: int
    size_bytes: int
    clean_size: int
    thumbnail: bytes
    preview: bytes
    thumbnail_sha256: str = ""
    thumbnail_size: int = 0
    preview_sha256: str = ""
    preview_size: int = 0


@dataclass(frozen=True, slots=True)
class DerivativeRow:
    """One item's thumbnail or preview as the database holds it, with what access needs.

    Attributes:
        picture_sha256: The item's picture (the key of its ``pictures`` row).
        digest: The recorded SHA-256 of the plain derivative; ``None`` on rows written before
            digests were recorded.
        data: The derivative as stored (sealed, in an encrypted shop).
    """

    item_id: int
    owner_id: int
    public: bool
    picture_sha256: str
    digest: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredDerivatives:
    """A picture's thumbnail and preview as the database holds them (sealed or not)."""

    sha256: str
    thumbnail: bytes
    preview: bytes


@dataclass(frozen=True, slots=True)
class PictureInfo:
    """What is recorded about a stored picture."""

    format: str
    width: int
    height: int
    orientation: int
    size_bytes: int
    clean_sha256: str


@dataclass(frozen=True, slots=True)
class ItemDraft:
    """An item about to be listed from a finished upload.

    Attributes:
        upload_id: The upload it comes from; its row goes in the same commit.
        picture: The picture's rows when its files were just stored; ``None`` when the picture
            is stored already (then it must still be when the item is added).
    """

    owner_id: int
    sha256: str
    listing: Listing
    upload_id: str
    picture: NewPicture | None


@dataclass(frozen=True, slots=True)
class ItemEdit:
    """The fields an edit changes; ``None`` leaves a field as it is."""

    title: str | None = None
    description: str | None = None
    price_cents: int | None = None
    stock: int | None = None
    public: bool | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class UploadRow:
    """An upload in progress."""

    id: str
    owner_id: int
    sha256: str
    size: int
    metadata: ItemMetadata


@dataclass(frozen=True, slots=True)
class UploadQuota:
    """How much one user may have in unfinished uploads at once."""

    uploads: int
    bytes: int
    #: The declared bytes of everyone's unfinished uploads together (``None``: no bound).
    total_bytes: int | None = None

    def admits(self, usage: UploadUsage, size: int) -> bool:
        """Whether one more upload of ``size`` declared bytes fits beside ``usage``."""
        return usage.uploads < self.uploads and usage.bytes + size <= self.bytes

    def admits_total(self, declared: int, size: int) -> bool:
        """Whether one more upload of ``size`` fits beside everyone's ``declared`` bytes."""
        return self.total_bytes is None or declared + size <= self.total_bytes


@dataclass(frozen=True, slots=True)
class UploadUsage:
    """What one user has in unfinished uploads: how many, and their declared bytes."""

    uploads: int
    bytes: int


# -- errors ----------------------------------------------------------------------------------


class DuplicateItem(Exception):
    """The owner lists this picture already (one seller never lists a picture twice)."""


class PictureMissing(Exception):
    """An item was to show a stored picture whose rows are gone (its last item was deleted)."""


class UploadExists(Exception):
    """The owner has an unfinished upload of this file already."""


class UploadStoreFull(Exception):
    """A new upload would take everyone's unfinished uploads over the shop's bound."""


class UploadQuotaExceeded(Exception):
    """A new upload would take its owner over the quota; nothing was recorded."""

    def __init__(self, usage: UploadUsage) -> None:
        super().__init__(f"{usage.uploads} uploads of {usage.bytes} bytes in progress")
        self.usage = usage


# -- repositories ----------------------------------------------------------------------------


class CatalogueRepository(Protocol):
    """Items, their tags, listings and text search.

    Visibility: a viewer sees public items and their own private ones; every method taking a
    ``viewer_id`` applies that rule.
    """

    async def items(self, item_ids: Sequence[int]) -> dict[int, ItemRow]:
        """The rows of the items that exist among ``item_ids``."""
        ...

    async def item_showing(self, owner_id: int, sha256: str) -> int | None:
        """The id of ``owner_id``'s item showing picture ``sha256``, if there is one."""
        ...

    async def add_item(self, draft: ItemDraft, now: float) -> int:
        """List an item: its picture's rows if new, the item, its tags, minus the upload row.

        ``created_at`` is ``now``, but never below the newest item's (the wall clock may step
        back), so a newest-first listing in progress never receives an item added after it
        started. Returns the new item's id; ids are never reused.

        Raises:
            DuplicateItem: the owner lists this picture already.
            PictureMissing: ``draft.picture`` is ``None`` and the picture is not stored.
        """
        ...

    async def edit_item(self, item_id: int, edit: ItemEdit, now: float) -> bool:
        """Change an item's fields and, if given, its tags; return whether the item exists."""
        ...

    async def delete_items(self, item_ids: Sequence[int]) -> list[StoredFiles]:
        """Delete items (with their tags), then the rows of pictures no item shows any more.

        Returns:
            The files of the pictures whose rows went, to remove once nothing refers to them.
        """
        ...

    async def cards(self, item_ids: Sequence[int], *, viewer_id: int | None) -> list[ItemCard]:
        """The cards of ``item_ids`` in the given order, skipping ids that do not exist.

        Cards name their thumbnails (hash and size) and carry no bytes (see
        :class:`~backend.catalogue.card_pictures.CardPictures`); so do :meth:`page`'s.

        Args:
            viewer_id: Skip items this user may not see; ``None`` only for callers that checked
                access themselves (an owner's or admin's own action).
        """
        ...

    async def detail(self, item_id: int) -> ItemDetail | None:
        """Everything about one item, or ``None``; the caller checks access.

        Its pictures are named (hash and size, ``""`` where none is recorded), not read.
        """
        ...

    async def derivatives(
        self, kind: DerivativeKind, item_ids: Sequence[int]
    ) -> list[DerivativeRow]:
        """The stored thumbnails (or previews) of those of ``item_ids`` that exist, in one query.

        The caller checks access on each row (its owner and visibility come with it).
        """
        ...

    async def record_digests(
        self, kind: DerivativeKind, digests: Sequence[tuple[str, str, int]]
    ) -> None:
        """Record (picture sha256, derivative sha256, size) where no digest is recorded yet."""
        ...

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
        """Up to ``limit`` cards matching ``criteria`` in ``sort`` order.

        Args:
            after: Continue strictly after this key (see
                :data:`~backend.catalogue.filters.KEYSETS`); ``None`` from the start.
            part: Of a text search, only this part (see
                :class:`~backend.catalogue.filters.TextMatch`); ``None``: all matches. The
                cards of the ``SEEN`` part say what the model saw (``looks_like``).
        """
        ...

    async def count(self, viewer_id: int, criteria: Criteria) -> int:
        """How many items match ``criteria`` for ``viewer_id``."""
        ...

    async def matching_ids(self, viewer_id: int, criteria: Criteria) -> list[int]:
        """The ids, ascending, of every item matching ``criteria`` that the viewer sees."""
        ...

    async def tag_counts(self, viewer_id: int, prefix: str, limit: int) -> list[TagCount]:
        """Tags starting with ``prefix`` and how many items ``viewer_id`` can see carry each.

        Tags only private items of other people carry are left out: their names alone would
        reveal something of those items. Starter tags are listed even when unused, for
        completion. Most used first, then by name.

        Args:
            prefix: A normalised prefix (see :func:`~backend.catalogue.tags.normalise_prefix`).
        """
        ...

    async def has_starter_tags(self) -> bool:
        """Whether any starter tag was loaded (on an earlier start)."""
        ...

    async def add_starter_tags(self, tags: Sequence[str]) -> None:
        """Mark ``tags`` (normalised) as starter tags, adding those that do not exist."""
        ...


class PictureRepository(Protocol):
    """The rows of stored pictures."""

    async def exists(self, sha256: str) -> bool:
        """Whether a picture row exists for ``sha256``."""
        ...

    async def info(self, sha256: str) -> PictureInfo | None:
        """What is recorded about the picture, or ``None``."""
        ...

    async def referenced(self, name: str) -> bool:
        """Whether a picture row names the file ``name`` (as its original or its clean copy)."""
        ...

    async def derivatives_after(self, after: str, limit: int) -> list[StoredDerivatives]:
        """The stored thumbnails and previews of up to ``limit`` pictures whose hash sorts after
        ``after`` (``""`` for the first), in hash order: for jobs walking every picture."""
        ...

    async def replace_derivatives(self, old: StoredDerivatives, new: StoredDerivatives) -> bool:
        """Store ``new`` in place of ``old`` if the picture still has exactly ``old``; return
        whether it did (a picture deleted meanwhile is left alone)."""
        ...

    async def prune(self) -> set[str]:
        """Delete the rows of pictures no item shows; return the files the others name.

        Pictures being given an item at the same moment (by another server) are left alone.
        """
        ...


class UploadRepository(Protocol):
    """Uploads in progress (one row each; the bytes live in the upload area)."""

    async def get(self, upload_id: str) -> UploadRow | None:
        """The upload with this id, or ``None``."""
        ...

    async def find(self, owner_id: int, sha256: str) -> UploadRow | None:
        """The owner's unfinished upload of the file with this hash, if any."""
        ...

    async def add(self, upload: UploadRow, created_at: float, quota: UploadQuota) -> None:
        """Record a new upload, unless it would take its owner over ``quota``.

        Raises:
            UploadQuotaExceeded: the owner's uploads with this one would exceed ``quota`` in
                number or in declared bytes.
            UploadExists: the owner has an upload of this file already.
        """
        ...

    async def set_metadata(self, upload_id: str, metadata: ItemMetadata) -> None:
        """Replace an upload's listing metadata (the latest sent wins)."""
        ...

    async def delete(self, upload_ids: Iterable[str]) -> None:
        """Delete the rows of these uploads (those that exist)."""
        ...

    async def ids(self) -> set[str]:
        """The ids of every upload in progress."""
        ...

    async def begun_before(self, cutoff: float) -> list[str]:
        """The ids of the uploads begun at or before ``cutoff`` (epoch seconds)."""
        ...
