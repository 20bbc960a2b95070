"""Provides listing criteria and the keyset sort orders, independent of the storage engine.

What a viewer may see (public items, plus the viewer's own private ones) is part of every
listing, count and id set; each repository writes that rule, the filters and the orders in its
own SQL, from the :class:`Criteria` and :data:`KEYSETS` defined here.

A text search lists its matches in two parts (:class:`TextMatch`): first the items whose
seller's own words (title, description, tags) hold the search words, then those that match only
by what the image model sees in their picture (see :mod:`backend.catalogue.seen`), each part in
the listing's sort order. Its keyset positions start with the part: ``[part, *sort key]``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from backend.catalogue.cursors import Position
from backend.catalogue.seen import SeenMatch
from backend.catalogue.tags import normalise_tags
from backend.catalogue.textsearch import search_words
from protocol.errors import BadRequest
from protocol.messages.catalogue import ItemCard, ListingFilters, SortOrder


class TextMatch(enum.IntEnum):
    """The parts of a text search's listing, in the order they are listed."""

    #: The seller's own words (title, description or tags) hold the search words.
    WORDS = 0
    #: Only what the image model sees in the picture matches the search words.
    SEEN = 1


@dataclass(frozen=True, slots=True)
class Criteria:
    """Normalised filters of one listing (see :class:`ListingFilters`).

    Attributes:
        tags: Items carrying every one of these tags, sorted.
        words: Items holding every one of these words, the last one as a prefix (see
            :mod:`backend.catalogue.textsearch`); empty for no text filter.
        seen: What the words name among the classes the image model sees, when they name
            any: items whose picture shows one match too (see :class:`TextMatch`).
    """

    tags: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    owner_id: int | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    in_stock: bool = False
    seen: SeenMatch | None = None

    @classmethod
    def from_filters(cls, filters: ListingFilters, viewer_id: int) -> Criteria:
        """Validate and normalise the filters a viewer sent.

        Raises:
            BadRequest: a tag is invalid, the price range is empty, or ``mine`` contradicts
                ``owner_id``.
        """
        owner_id = filters.owner_id
        if filters.mine:
            if owner_id is not None and owner_id != viewer_id:
                raise BadRequest("'mine' and another seller's id cannot be combined")
            owner_id = viewer_id
        low, high = filters.min_price_cents, filters.max_price_cents
        if low is not None and high is not None and low > high:
            raise BadRequest("The lowest price is above the highest price")
        return cls(
            tags=tuple(sorted(normalise_tags(filters.tags))),
            words=search_words(filters.text),
            owner_id=owner_id,
            min_price_cents=low,
            max_price_cents=high,
            in_stock=filters.in_stock,
        )

    def parts(self) -> tuple[TextMatch | None, ...]:
        """The parts a listing of these criteria is made of, in order (``None``: no text)."""
        if not self.words:
            return (None,)
        if self.seen is None:
            return (TextMatch.WORDS,)
        return (TextMatch.WORDS, TextMatch.SEEN)

    def canonical(self) -> list[object]:
        """The criteria as plain values, for binding cursors to them.

        ``seen`` is left out: it follows from the words.
        """
        return [
            list(self.tags),
            list(self.words),
            self.owner_id,
            self.min_price_cents,
            self.max_price_cents,
            self.in_stock,
        ]


@dataclass(frozen=True, slots=True)
class Keyset:
    """A total listing order: a card's sort key (ending with its id) and the key's types.

    Repositories order by the key's columns and continue strictly after a position.
    """

    key: Callable[[ItemCard], Position]
    types: tuple[type, type]

    def check(self, position: Position) -> Position:
        """Return ``position`` with its values of this order's types, else BadRequest.

        A float that happened to be whole travels as an int; it comes back a float.
        """
        if len(position) != 2 or not all(
            isinstance(value, kind) or (kind is float and type(value) is int)
            for value, kind in zip(position, self.types, strict=True)
        ):
            raise BadRequest("The cursor does not belong to this sort order")
        return [kind(value) for value, kind in zip(position, self.types, strict=True)]

    def position(self, card: ItemCard, *, text: bool) -> Position:
        """The position of ``card``; in a text search's listing, led by its part."""
        key = self.key(card)
        if not text:
            return key
        part = TextMatch.WORDS if card.looks_like is None else TextMatch.SEEN
        return [int(part), *key]

    def open(self, position: Position, *, text: bool) -> tuple[TextMatch | None, Position]:
        """The part and the sort key of a position (see :meth:`position`), else BadRequest."""
        if not text:
            return None, self.check(position)
        if not position or type(position[0]) is not int or position[0] not in set(TextMatch):
            raise BadRequest("The cursor does not belong to this search")
        return TextMatch(position[0]), self.check(position[1:])


KEYSETS: Final[dict[SortOrder, Keyset]] = {
    SortOrder.NEWEST: Keyset(lambda card: [card.created_at, card.id], (float, int)),
    SortOrder.PRICE_UP: Keyset(lambda card: [card.price_cents, card.id], (int, int)),
    SortOrder.PRICE_DOWN: Keyset(lambda card: [card.price_cents, card.id], (int, int)),
}
