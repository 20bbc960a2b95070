"""Provides listing criteria as PostgreSQL SQL: visibility, filters, text search and keyset orders.

Every listing, count and id set goes through :func:`where`, so the visibility rule is written
once for this engine. Text search matches the ``search`` tsvector (GIN-indexed) against
``pixmart_search_query`` of the search words; both are defined in the catalogue migration. What
the image model sees is looked up in ``picture_classes``.
"""

from __future__ import annotations

from typing import Final

from backend.catalogue.filters import Criteria, TextMatch
from backend.catalogue.seen import SeenMatch
from protocol.messages.catalogue import SortOrder


class Args:
    """The positional arguments of one statement: :meth:`add` a value, get its placeholder."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def add(self, value: object) -> str:
        """Append ``value`` and return its placeholder (``$1``, ``$2``, ...)."""
        self.values.append(value)
        return f"${len(self.values)}"


def visible(viewer: str) -> str:
    """The rule for what a viewer may see; ``viewer`` is the placeholder of their user id."""
    return f"(i.public OR i.owner_id = {viewer})"


#: Per sort order: ``ORDER BY``, and the condition "strictly after the key" with two
#: placeholders to fill. Both match an index of the catalogue migration column for column, so
#: every batch is a range scan of it (backwards for the descending orders).
ORDERS: Final[dict[SortOrder, tuple[str, str]]] = {
    SortOrder.NEWEST: ("i.created_at DESC, i.id DESC", "(i.created_at, i.id) < ({}, {})"),
    SortOrder.PRICE_UP: ("i.price_cents ASC, i.id ASC", "(i.price_cents, i.id) > ({}, {})"),
    SortOrder.PRICE_DOWN: ("i.price_cents DESC, i.id DESC", "(i.price_cents, i.id) < ({}, {})"),
}


def seen_condition(seen: SeenMatch, args: Args) -> str:
    """The condition "the picture of ``items i`` shows what ``seen`` names"."""
    return (
        "i.sha256 IN (SELECT pc.sha256 FROM picture_classes pc"
        f" WHERE pc.class_id = ANY({args.add(seen.class_ids)}::int[])"
        f" GROUP BY pc.sha256 HAVING sum(pc.probability) >= {args.add(seen.threshold)})"
    )


def seen_class_column(seen: SeenMatch, args: Args) -> str:
    """The ``seen_class`` column: the most probable class of the picture that ``seen`` names."""
    return (
        "(SELECT pc.class_id FROM picture_classes pc WHERE pc.sha256 = i.sha256"
        f" AND pc.class_id = ANY({args.add(seen.class_ids)}::int[])"
        " ORDER BY pc.probability DESC, pc.class_id LIMIT 1) AS seen_class"
    )


def text_condition(criteria: Criteria, part: TextMatch | None, args: Args) -> str:
    """The condition on ``items i`` for a text search's words, in one part or in either."""
    if part is TextMatch.SEEN and criteria.seen is None:
        return "false"
    words = f"i.search @@ pixmart_search_query({args.add(list(criteria.words))}::text[])"
    if part is TextMatch.WORDS or criteria.seen is None:
        return words
    seen = seen_condition(criteria.seen, args)
    if part is TextMatch.SEEN:
        # A query of words without any token is NULL, and so would NOT of it be.
        return f"{seen} AND NOT coalesce({words}, false)"
    return f"({words} OR {seen})"


def where(criteria: Criteria, viewer_id: int, args: Args, part: TextMatch | None = None) -> str:
    """Return the SQL condition on ``items i``, its parameters added to ``args``.

    Args:
        part: Of a text search, only this part (see :class:`TextMatch`); ``None``: all of it.
    """
    parts = [visible(args.add(viewer_id))]
    if criteria.owner_id is not None:
        parts.append(f"i.owner_id = {args.add(criteria.owner_id)}")
    if criteria.min_price_cents is not None:
        parts.append(f"i.price_cents >= {args.add(criteria.min_price_cents)}")
    if criteria.max_price_cents is not None:
        parts.append(f"i.price_cents <= {args.add(criteria.max_price_cents)}")
    if criteria.in_stock:
        parts.append("i.stock > 0")
    for tag in criteria.tags:
        # The tag's id is looked up once (an InitPlan), so each candidate item costs one probe
        # of item_tags' index instead of a join.
        parts.append(
            "EXISTS (SELECT 1 FROM item_tags it WHERE it.item_id = i.id"
            f" AND it.tag_id = (SELECT t.id FROM tags t WHERE t.name = {args.add(tag)}))"
        )
    if criteria.words:
        parts.append(text_condition(criteria, part, args))
    return " AND ".join(parts)
