"""Provides the favourites messages: each user's kept list of items, added to and listed.

Favourites live on the server, one list per user, so they follow the person across devices.
Adding an item one may not see fails like reading it (``not_found``); adding one twice or
removing one that is not there changes nothing. The list comes newest first in batches like every
list; a favourite whose item was deleted or turned private stays in it, marked so (like a cart
line), with the title and price it had when it was added and no picture.
"""

from __future__ import annotations

import enum

import msgspec

from protocol.messages.base import Message, Reply, Request
from protocol.messages.catalogue import BatchLimit, Cursor, ItemCard, ItemId, PictureMode

#: Favourites one user may keep.
MAX_FAVOURITES = 1000


class FavouriteStatus(enum.StrEnum):
    """What became of a favourite's item, as its keeper may know it now."""

    #: The keeper may see the item; the favourite carries its card.
    AVAILABLE = "available"
    #: The item turned private; nothing more is said about it.
    PRIVATE = "private"
    #: The seller deleted the item.
    DELETED = "deleted"


class Favourite(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One item of a user's favourites.

    Attributes:
        item_id: The item.
        title: The current title; the title when added if the item is gone or private.
        price_cents: The current price; the price when added if the item is gone or private.
        added_price_cents: The price seen when it was added.
        status: What became of the item.
        added_at: When it was added (server clock, seconds since the epoch).
        card: The item's card (with its thumbnail) while the keeper may see it, else ``None``.
    """

    item_id: int
    title: str
    price_cents: int
    added_price_cents: int
    status: FavouriteStatus
    added_at: float
    card: ItemCard | None = None


class AddFavourite(Request):
    """Keep an item among the caller's favourites (already there: nothing changes)."""

    item_id: ItemId


class RemoveFavourite(Request):
    """Take an item out of the caller's favourites (not there: nothing changes)."""

    item_id: ItemId


class FavouriteState(Reply):
    """Whether the item is now among the caller's favourites, and how many they keep."""

    item_id: int
    favourite: bool
    count: int


class ListFavourites(Request):
    """The caller's favourites, newest first; send again with ``cursor`` for the next batch.

    ``pictures`` says how the cards' thumbnails come (see :class:`PictureMode`).
    """

    limit: BatchLimit | None = None
    cursor: Cursor | None = None
    pictures: PictureMode = PictureMode.INLINE


class FavouriteBatch(Reply):
    """One batch of favourites; ``cursor`` is ``None`` after the last one; ``total`` (how many
    the caller keeps) comes with the first batch only."""

    favourites: list[Favourite]
    cursor: str | None = None
    total: int | None = None


class GetFavouriteIds(Request):
    """The ids of every item among the caller's favourites (at most :data:`MAX_FAVOURITES`),
    so a client can mark them on any card."""


class FavouriteIds(Reply):
    """Every favourite's item id, newest first."""

    item_ids: list[int]


MESSAGES: tuple[type[Message], ...] = (
    AddFavourite,
    RemoveFavourite,
    FavouriteState,
    ListFavourites,
    FavouriteBatch,
    GetFavouriteIds,
    FavouriteIds,
)
