"""Provides the words for a saved search, the same in the TUI, the CLI and the server's notices."""

from __future__ import annotations

from protocol.messages.alerts import SavedSearch
from protocol.messages.catalogue import ListingFilters
from protocol.money import format_price


def describe_search(
    filters: ListingFilters,
    *,
    like_label: str | None = None,
    min_similarity: int | None = None,
    currency: str = "EUR",
) -> str:
    """``“sunset” · tags: print · €5.00 to €20.00 · in stock · like cat.jpg (≥ 70%)``.

    Args:
        filters: The saved filters.
        like_label: The example picture's name, for a picture search.
        min_similarity: Its least similarity in percent.
        currency: The shop's currency, for the prices.
    """
    parts: list[str] = []
    if filters.text:
        parts.append(f"“{filters.text}”")
    if filters.tags:
        parts.append("tags: " + ", ".join(filters.tags))
    low, high = filters.min_price_cents, filters.max_price_cents
    if low is not None and high is not None:
        parts.append(f"{format_price(low, currency)} to {format_price(high, currency)}")
    elif low is not None:
        parts.append(f"from {format_price(low, currency)}")
    elif high is not None:
        parts.append(f"up to {format_price(high, currency)}")
    if filters.in_stock:
        parts.append("in stock")
    if filters.owner_id is not None:
        parts.append(f"seller #{filters.owner_id}")
    if min_similarity is not None:
        parts.append(f"like {like_label or 'a picture'} (≥ {min_similarity}%)")
    return " · ".join(parts) or "everything"


def describe_saved(search: SavedSearch, currency: str = "EUR") -> str:
    """:func:`describe_search` of a saved search."""
    return describe_search(
        search.filters,
        like_label=search.like_label,
        min_similarity=search.min_similarity,
        currency=currency,
    )
