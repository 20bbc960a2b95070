"""Provides what the alerts service asks of storage: saved searches and the matching of an item.

A saved search's filters are stored twice: as the :class:`ListingFilters` JSON its owner sees, and
normalised for matching (tags and word tokens in tables of their own, indexed). An item then
finds the searches it satisfies with one statement driven by those indexes
(:meth:`AlertRepository.record_matches`) that also records each (search, item) pair, so every
pair alerts once however often the item changes. Picture searches are matched in memory (see
:mod:`backend.alerts.pictures`); the statement is handed the ids of those the picture matched and
checks their other filters like any search's.

The implementations (``sqlite_repository``, ``postgres_repository``) give the same answers; the
integration tests run on both engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from protocol.errors import Conflict


class SearchLimitReached(Conflict):
    """The user (or the whole shop) keeps as many saved searches as allowed."""


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """The bounds on saved searches, checked in the transaction that adds one.

    Attributes:
        per_user: Searches one user may keep.
        total: Searches the shop keeps, all users together.
        pictures: Picture searches the shop keeps (each holds 5 KB of memory per instance).
    """

    per_user: int
    total: int
    pictures: int


@dataclass(frozen=True, slots=True)
class WordToken:
    """One token a saved search's words ask for; ``prefix``: the item's token may be longer."""

    word: str
    prefix: bool


@dataclass(frozen=True, slots=True)
class SearchDraft:
    """A saved search about to be stored.

    Attributes:
        filters_json: The filters as its owner sees them (``ListingFilters`` as JSON).
        tags: Normalised tags, every one required.
        words: The tokens of its words, every one required.
        like_vector: The example picture's L2-normalised embedding; ``None``: no picture.
        like_model: The model version that made ``like_vector``.
        min_similarity: The least similarity in percent (with a picture only).
    """

    user_id: int
    filters_json: bytes
    owner_id: int | None
    min_price_cents: int | None
    max_price_cents: int | None
    in_stock: bool
    tags: tuple[str, ...]
    words: tuple[WordToken, ...]
    like_label: str | None = None
    like_vector: NDArray[np.float32] | None = None
    like_model: str | None = None
    min_similarity: int | None = None


@dataclass(frozen=True, slots=True)
class StoredSearch:
    """A saved search as its owner lists it."""

    id: int
    user_id: int
    filters_json: bytes
    like_label: str | None
    min_similarity: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class PictureSearch:
    """A picture search as the in-memory matcher holds it (vector L2-normalised, float32)."""

    id: int
    vector: NDArray[np.float32]
    min_similarity: int


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What matching needs of an item, read when it is matched (not when it was announced)."""

    id: int
    owner_id: int
    public: bool
    title: str
    description: str
    tags: tuple[str, ...]
    price_cents: int
    stock: int


@dataclass(frozen=True, slots=True)
class ItemProbe:
    """An item as the matching statement looks it up.

    Attributes:
        tokens: Its tokens (title, description, tags), distinct.
        prefixes: Every prefix of every token (the tokens included), distinct.
        pictures: Ids of the picture searches whose example it looks like enough.
    """

    facts: ItemFacts
    tokens: tuple[str, ...]
    prefixes: tuple[str, ...]
    pictures: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Match:
    """A saved search an item newly matched: whom to tell and what they saved."""

    search_id: int
    user_id: int
    filters_json: bytes
    like_label: str | None


def check_limits(
    limits: SearchLimits, *, mine: int, total: int, pictures: int, picture: bool
) -> None:
    """Refuse one more search beyond a bound; repositories call it inside the adding transaction.

    Args:
        mine, total, pictures: The searches the user, the shop, and the shop by picture keep.
        picture: Whether the new search is a picture search.

    Raises:
        SearchLimitReached: which bound, in words.
    """
    if mine >= limits.per_user:
        raise SearchLimitReached(
            f"You keep {mine} saved searches, the most allowed; remove one first",
            details={"limit": limits.per_user},
        )
    if total >= limits.total or (picture and pictures >= limits.pictures):
        raise SearchLimitReached("The shop keeps as many saved searches as it can; try later")


class AlertRepository(Protocol):
    """Saved searches and the record of what each has alerted on."""

    async def add(self, draft: SearchDraft, now: float, limits: SearchLimits) -> StoredSearch:
        """Store a search, unless a bound is reached (checked in the same transaction).

        Raises:
            SearchLimitReached: the user or the shop keeps as many as allowed.
        """
        ...

    async def searches(self, user_id: int) -> list[StoredSearch]:
        """The user's saved searches, oldest first."""
        ...

    async def remove(self, user_id: int, search_id: int) -> bool:
        """Remove one of the user's searches; ``False`` if they have none of that id."""
        ...

    async def picture_searches(self, model_version: str) -> list[PictureSearch]:
        """Every picture search whose example was embedded by ``model_version``."""
        ...

    async def picture_search(self, search_id: int, model_version: str) -> PictureSearch | None:
        """One picture search (``None``: removed, not a picture search, or another model's)."""
        ...

    async def item_facts(self, item_id: int) -> ItemFacts | None:
        """The item as it stands now; ``None`` if it was deleted."""
        ...

    async def record_matches(self, probe: ItemProbe, now: float) -> list[Match]:
        """Find the searches the item satisfies that have not alerted on it yet, and record
        them as alerted, in one transaction; return them.

        A search matches when the item carries all its tags and tokens, its price and stock
        fit, it is the seller the search names (if any), its picture is among
        ``probe.pictures`` (picture searches only), and the search's owner may see the item
        (it is public, or theirs).
        """
        ...
