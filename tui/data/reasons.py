"""Provides the words a card shows for why it is in a listing: how similar, or what it shows.

Similar-picture results carry a score (``93% similar``); text search results that match by what
the image model sees in the picture, rather than by the seller's words, carry its name
(``looks like: golden retriever``).
"""

from __future__ import annotations

from protocol.messages.catalogue import ItemCard
from tui.data.similar import similarity_label


def looks_like_label(name: str) -> str:
    """``golden retriever`` → ``looks like: golden retriever``."""
    return f"looks like: {name}"


def card_reason(card: ItemCard) -> str:
    """Why ``card`` is in its listing, in a few words; empty when the listing says it already."""
    if card.score is not None:
        return similarity_label(card.score)
    if card.looks_like:
        return looks_like_label(card.looks_like)
    return ""
