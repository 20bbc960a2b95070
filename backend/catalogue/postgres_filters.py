"""Provides listing criteria as PostgreSQL SQL: visibility, filters, text search and keyset orders.

Every listing, count and id set goes through :func:`where`, so the visibility rule is written
once for this engine. Text search matches the ``search`` tsvector (GIN-indexed) against
``pixmart_search_query`` of the search words; both are defined in the catalogue migration.
"""

from __future__ import annotations

from typing import Final

from backend.catalogue.filters import Criteria
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


def where(criteria: Criteria, viewer_id: int, args: Args) -> str:
    """Return the SQL condition on ``items i``, its parameters added to ``args``."""
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
        parts.append(f"i.search @@ pixmart_search_query({args.add(list(criteria.words))}::text[])")
    return " AND ".join(parts)
