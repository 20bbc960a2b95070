"""Provides listing criteria as SQLite SQL: visibility, filters, text search and keyset orders.

Every listing, count and id set goes through :func:`where`, so the visibility rule is written
once for this engine. The sellers' words are searched in the FTS5 table ``items_fts``; what the
image model sees, in ``picture_classes`` (class ids passed as one JSON array, so a statement's
text does not change with the number of classes a search names).
"""

from __future__ import annotations

import json
from typing import Final

from backend.catalogue.filters import Criteria, TextMatch
from backend.catalogue.seen import SeenMatch
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


_SEEN_CLASSES: Final = "pc.class_id IN (SELECT value FROM json_each(?))"


def seen_condition(seen: SeenMatch) -> tuple[str, list[object]]:
    """The condition "the picture of ``items i`` shows what ``seen`` names", and its parameters."""
    return (
        f"i.sha256 IN (SELECT pc.sha256 FROM picture_classes pc WHERE {_SEEN_CLASSES}"
        " GROUP BY pc.sha256 HAVING sum(pc.probability) >= ?)",
        [json.dumps(seen.class_ids), seen.threshold],
    )


def seen_class_column(seen: SeenMatch) -> tuple[str, list[object]]:
    """The ``seen_class`` column: the most probable class of the picture that ``seen`` names."""
    return (
        "(SELECT pc.class_id FROM picture_classes pc"
        f" WHERE pc.sha256 = i.sha256 AND {_SEEN_CLASSES}"
        " ORDER BY pc.probability DESC, pc.class_id LIMIT 1) AS seen_class",
        [json.dumps(seen.class_ids)],
    )


def text_condition(criteria: Criteria, part: TextMatch | None) -> tuple[str, list[object]]:
    """The condition on ``items i`` for a text search's words, in one part or in either."""
    if part is TextMatch.SEEN and criteria.seen is None:
        return "0", []
    words = "i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)"
    params: list[object] = [fts_query(criteria.words)]
    if part is TextMatch.WORDS or criteria.seen is None:
        return words, params
    seen, seen_params = seen_condition(criteria.seen)
    if part is TextMatch.SEEN:
        return f"{seen} AND NOT {words}", [*seen_params, *params]
    return f"({words} OR {seen})", [*params, *seen_params]


def where(
    criteria: Criteria, viewer_id: int, part: TextMatch | None = None
) -> tuple[str, list[object]]:
    """Return the SQL condition on ``items i`` and its parameters.

    Args:
        part: Of a text search, only this part (see :class:`TextMatch`); ``None``: all of it.
    """
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
        condition, text_params = text_condition(criteria, part)
        parts.append(condition)
        params.extend(text_params)
    return " AND ".join(parts), params
