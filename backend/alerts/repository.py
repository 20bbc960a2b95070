"""Provides what the alerts service asks of storage: saved searches and the matching of an item.

A saved search's filters are stored twice: as the :class:`ListingFilters` JSON its owner sees, and
normalised for matching (tags and word tokens in tables of their own, indexed). An item then
finds the searches it satisfies with one statement driven by those indexes
(:meth:`AlertRepository.record_matches`) that also records each (search, item) pair, so every
pair alerts once however often the item changes. Picture searches are matched in memory (see
:mod:`backend.alerts.pictures`); the statement is handed the ids of those the picture matched and
checks their other filters like any search's.

Items wait in a durable backlog (``alert_backlog``, filled by triggers in the transaction that
writes the item; see :mod:`backend.alerts.backlog`): :meth:`AlertRepository.record_matches` settles
an item's entry in the transaction that records its alerts and stores their notices, so a crash
either leaves the entry (matched again, no notice sent yet) or removes it with the notices.

The implementations (``sqlite_repository``, ``postgres_repository``) give the same answers; the
integration tests run on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from backend.inbox.notices import Delivered, NewNotice
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


@dataclass(frozen=True, slots=True)
class BacklogEntry:
    """An item waiting in the backlog to be matched.

    Attributes:
        version: Raised by every change of the item; an entry is settled only at the version
            it was read at (a change made meanwhile is matched again).
        age: Seconds since it was first queued, by the database's clock.
        attempts: Matchings of it that failed.
    """

    item_id: int
    version: int
    age: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Settle:
    """What becomes of a backlog entry in the transaction that records its item's alerts.

    Attributes:
        retry_in: ``None``: the entry is done and deleted; else it stays and is due again in
            that many seconds (its picture searches wait for the item's embedding).
    """

    entry: BacklogEntry
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one matching recorded: the new (search, item) pairs and the notices stored."""

    matches: list[Match]
    delivered: list[Delivered]


@dataclass(frozen=True, slots=True)
class Overflow:
    """New or changed items the full backlog did not queue (so they alert nobody)."""

    dropped: int
    last_item_id: int | None
    capacity: int


#: The notice an item's new match sends its search's owner.
NoticeFor = Callable[[Match], NewNotice]


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

    async def record_matches(
        self,
        probe: ItemProbe,
        now: float,
        notice_for: NoticeFor,
        *,
        keep: int,
        settle: Settle | None = None,
    ) -> Recorded | None:
        """In one transaction: find the searches the item satisfies that have not alerted on it
        yet, record them as alerted, store each one's notice (``notice_for``) in its owner's
        inbox (kept to its newest ``keep``), and settle the backlog entry.

        A search matches when the item carries all its tags and tokens, its price and stock
        fit, it is the seller the search names (if any), its picture is among
        ``probe.pictures`` (picture searches only), and the search's owner may see the item
        (it is public, or theirs).

        Returns:
            ``None`` (nothing written) when ``settle`` names an entry that another instance is
            settling, that is gone, or whose item changed since it was read.
        """
        ...

    async def due(self, limit: int) -> list[BacklogEntry]:
        """Up to ``limit`` backlog entries due now, the longest due first (on PostgreSQL,
        skipping those another instance is settling)."""
        ...

    async def retry_later(self, entry: BacklogEntry, seconds: float, *, failed: bool) -> None:
        """Make ``entry`` due again in ``seconds`` (counting a failure if ``failed``), unless
        its item changed meanwhile (then it is due at once anyway)."""
        ...

    async def discard(self, entry: BacklogEntry) -> None:
        """Delete ``entry`` without matching (item deleted, or given up on), unless its item
        changed meanwhile."""
        ...

    async def wake_waiting(self) -> None:
        """Make every entry that waits for its item's embedding due now."""
        ...

    async def take_overflow(self) -> Overflow | None:
        """The items the full backlog did not queue since the last call (count reset), or
        ``None`` if there were none."""
        ...

    async def backlog_size(self) -> int:
        """How many items wait in the backlog."""
        ...
