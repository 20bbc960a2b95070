"""Provides similar-picture listings: :class:`SimilarQuery`, :class:`SimilarListing` and the
words and pictures around them.

A similar-picture listing streams like any other (:class:`~tui.data.listing.Listing`): a batch
at a time, on demand, with the server's cursor. The example is sent once; later batches name it
by the ``query_id`` the server gave (the protocol helper sends the picture again should the server
have forgotten it). Every card carries a ``score`` from 0 to 1, shown as ``93% similar``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from protocol.client import Session
from protocol.messages.base import Capabilities
from protocol.messages.catalogue import ItemBatch, ListingFilters
from protocol.messages.vision import SimilarBatch
from protocol.vision_client import search_by_picture, similar_to_item
from tui.data.listing import Listing, ListingQuery

#: Formats the server takes as they are; anything else is re-encoded as JPEG.
SENDABLE_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})

#: A picture shrunk before sending keeps this many pixels on its longest side (the model looks
#: at 224×224, so nothing it needs is lost).
QUERY_MAX_SIDE = 1024

#: Room left in a message for everything besides the picture.
MESSAGE_MARGIN = 64 * 1024

#: The server's usual limits, for when it has not said its own.
DEFAULT_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PIXELS = 50_000_000


def similarity_label(score: float) -> str:
    """``0.934`` → ``93% similar``."""
    return f"{round(100 * min(1.0, max(0.0, score)))}% similar"


def search_filters(filters: ListingFilters) -> ListingFilters:
    """The filters of a search form that apply to a picture search: all but the words."""
    return ListingFilters(
        tags=list(filters.tags),
        mine=filters.mine,
        owner_id=filters.owner_id,
        min_price_cents=filters.min_price_cents,
        max_price_cents=filters.max_price_cents,
        in_stock=filters.in_stock,
    )


@dataclass(frozen=True)
class SimilarQuery(ListingQuery):
    """Items that look like an example, best first: a picture of the person's, or an item.

    Give exactly one of ``picture`` and ``item_id``; the sort order does not apply.

    Attributes:
        label: how the example is named, e.g. ``cat.jpg`` or ``“Sunset no. 3”``.
        picture: the example picture, ready to send (see :func:`load_query_picture`).
        item_id: the stored item whose look-alikes to show (the item itself is left out).
    """

    label: str = ""
    picture: bytes | None = field(default=None, repr=False)
    item_id: int | None = None

    def __post_init__(self) -> None:
        if (self.picture is None) == (self.item_id is None):
            raise ValueError("A similar-picture search needs a picture or an item, not both")

    def describe(self) -> str:
        """``like cat.jpg · tags: cat · in stock``."""
        filters = ListingQuery(self.filters).describe()
        return " · ".join(part for part in (f"like {self.label}", filters) if part)

    def listing(self, batch_size: int | None = None) -> SimilarListing:
        return SimilarListing(self, batch_size)


class SimilarListing(Listing):
    """The items of one :class:`SimilarQuery` loaded so far, best match first."""

    def __init__(self, query: SimilarQuery, batch_size: int | None = None) -> None:
        super().__init__(query, batch_size)
        self.similar = query
        #: The server's handle of the example picture, from the first batch on.
        self.query_id: str | None = None

    async def fetch_batch(self, session: Session) -> ItemBatch | SimilarBatch:
        query = self.similar
        if query.picture is not None:
            batch = await search_by_picture(
                session,
                query.picture,
                query.filters,
                limit=self.batch_size,
                cursor=self.cursor,
                query_id=self.query_id,
            )
            self.query_id = batch.query_id or self.query_id
            return batch
        assert query.item_id is not None  # SimilarQuery checks that one of them is given
        return await similar_to_item(
            session, query.item_id, query.filters, limit=self.batch_size, cursor=self.cursor
        )


def load_query_picture(path: Path, *, max_bytes: int, max_pixels: int) -> bytes:
    """The bytes to search with for a picture file: the file itself when the server takes it as
    it is, otherwise a JPEG of it at most :data:`QUERY_MAX_SIDE` pixels wide and high.

    Disk and CPU work: call it in a thread.

    Args:
        max_bytes: the largest picture the server takes (upload and message limits).
        max_pixels: the most pixels the server decodes.

    Raises:
        ValueError: the file cannot be read or is not a picture; the message says so in words.
    """
    name = path.name or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{name} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{name} is a folder, not a picture") from None
    except OSError as exc:
        raise ValueError(f"{name} cannot be read: {exc.strerror or exc}") from None
    if not data:
        raise ValueError(f"{name} is empty")
    try:
        with Image.open(io.BytesIO(data)) as source:
            width, height = source.size
            if (
                source.format in SENDABLE_FORMATS
                and len(data) <= max_bytes
                and width * height <= max_pixels
            ):
                return data
            source.draft("RGB", (QUERY_MAX_SIDE, QUERY_MAX_SIDE))
            picture = source.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise ValueError(f"{name} is not a picture pixmart can read") from None
    picture.thumbnail((QUERY_MAX_SIDE, QUERY_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def query_limits(capabilities: Capabilities | None) -> tuple[int, int]:
    """The largest example picture a server takes in one message, in bytes and in pixels (the
    usual server limits when they are not known)."""
    if capabilities is None:
        return DEFAULT_MESSAGE_BYTES - MESSAGE_MARGIN, DEFAULT_MAX_PIXELS
    size = min(capabilities.max_upload_bytes, capabilities.max_message_bytes - MESSAGE_MARGIN)
    return max(1, size), capabilities.max_pixels


__all__ = [
    "QUERY_MAX_SIDE",
    "SimilarListing",
    "SimilarQuery",
    "load_query_picture",
    "query_limits",
    "search_filters",
    "similarity_label",
]
