"""Provides listing criteria as SQLite SQL: visibility, filters, text search and keyset orders.

Every listing, count and id set goes through :func:`where`, so the visibility rule is written
once for this engine.
"""

from __future__ import annotations

from typing import Final

from backend.catalogue.filters import Criteria
from protocol.messages.catalogue import SortOrder

#: The rule for what a viewer may see: the parameter is the viewer's user id.
VISIBLE_SQL: Final = "(i.public = 1 OR i.owner_id = ?)"

#: Per sort order: ``ORDER BY`` and the condition "strictly after the key (?, ?)".
ORDERS: Final[dict[SortOrder, tuple[str, str]]] = {
    SortOrder.NEWEST: ("i.created_at DESC, i.id DESC", "(i.created_at, i.id) < (?, ?)"),
    SortOrder.PRICE_UP: ("i.price_cents ASC, i.id ASC", "(i.price_cents, i.id) > (?, ?)"),
    SortOrder.PRICE_DOWN: ("i.price_cents DESC, i.id DESC", "(i.price_cents, i.id) < (?, ?)"),
}


def fts_query(words: tuple[str, ...]) -> str:
    """Return the FTS5 expression matching items that hold every word, the last as a prefix.

    Each word is quoted, so it is a literal phrase whatever it holds: FTS5's own syntax (``AND``,
    ``NEAR``, column filters, ``^``, ``*``) never applies to what a person typed. The tokenizer
    splits ``_`` inside quotes into a phrase, and a word with no token at all is left out of
    the match, unless it is the only one: then nothing matches.

    Args:
        words: From :func:`~backend.catalogue.textsearch.search_words`; at least one.
    """
    # A word is \w+, which never holds '"': quoting needs no escaping.
    terms = [f'"{word}"' for word in words]
    terms[-1] += "*"
    return " ".join(terms)


def where(criteria: Criteria, viewer_id: int) -> tuple[str, list[object]]:
    """Return the SQL condition on ``items i`` and its parameters."""
    parts = [VISIBLE_SQL]
    params: list[object] = [viewer_id]
    if criteria.owner_id is not None:
        parts.append("i.owner_id = ?")
        params.append(criteria.owner_id)
    if criteria.min_price_cents is not None:
        parts.append("i.price_cents >= ?")
        params.append(criteria.min_price_cents)
    if criteria.max_price_cents is not None:
        parts.append("i.price_cents <= ?")
        params.append(criteria.max_price_cents)
    if criteria.in_stock:
        parts.append("i.stock > 0")
    for tag in criteria.tags:
        parts.append(
            "i.id IN (SELECT it.item_id FROM item_tags it JOIN tags t ON t.id = it.tag_id"
            " WHERE t.name = ?)"
        )
        params.append(tag)
    if criteria.words:
        parts.append("i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
        params.append(fts_query(criteria.words))
    return " AND ".join(parts), params
