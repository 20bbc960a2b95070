"""Provides the normalising of a saved search's filters for matching, and of an item's words.

A listing matches an item that holds every search word, the last one as a prefix, in its title,
description or tags, as the engines tokenise them (:func:`~backend.catalogue.textsearch.tokens`).
A saved search is stored as those same tokens (:class:`WordToken`), and an item is looked up by
its own tokens and their prefixes, so the database finds the searches an item satisfies through
an index. One difference from a listing, on purpose: a word the engines split into a phrase
(``foo_bar``) asks for both tokens, not for them side by side.
"""

from __future__ import annotations

from typing import Final

from backend.alerts.repository import ItemFacts, SearchDraft, WordToken
from backend.catalogue.filters import Criteria
from backend.catalogue.textsearch import search_words, tokens
from protocol.errors import BadRequest
from protocol.messages.catalogue import ListingFilters

#: The longest prefix of an item's token that a saved search's last word is looked up by: a
#: search word is at most 64 characters (textsearch.MAX_TERM_LENGTH), so longer prefixes
#: could never be one.
MAX_PREFIX: Final = 64


def word_tokens(text: str) -> tuple[WordToken, ...]:
    """The tokens a saved search's words ask for, the last one as a prefix, each once.

    A token asked for both whole and as a prefix is asked for whole (that implies the prefix).
    """
    flat = [token for word in search_words(text) for token in tokens(word)]
    wanted: dict[str, bool] = {}
    for position, token in enumerate(flat):
        prefix = position == len(flat) - 1
        wanted[token] = wanted.get(token, True) and prefix
    return tuple(WordToken(word, prefix) for word, prefix in wanted.items())


def saved_filters(filters: ListingFilters, user_id: int) -> tuple[ListingFilters, Criteria]:
    """The filters as saved (tags normalised, ``mine`` as the seller's id) and their criteria.

    Raises:
        BadRequest: a tag is invalid, the price range is empty, ``mine`` contradicts
            ``owner_id``, or the words hold nothing to search for.
    """
    criteria = Criteria.from_filters(filters, user_id)
    text = " ".join(filters.text.split())
    if text and not word_tokens(text):
        raise BadRequest("The words hold no letters or digits to look for")
    saved = ListingFilters(
        tags=list(criteria.tags),
        text=text,
        owner_id=criteria.owner_id,
        min_price_cents=criteria.min_price_cents,
        max_price_cents=criteria.max_price_cents,
        in_stock=criteria.in_stock,
    )
    return saved, criteria


def is_empty(filters: ListingFilters) -> bool:
    """Whether the filters ask for nothing (every item would match)."""
    return filters == ListingFilters()


def item_tokens(facts: ItemFacts) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An item's distinct tokens (title, description, tags) and every prefix of them."""
    found = tokens(" ".join((facts.title, facts.description, *facts.tags)))
    distinct = tuple(dict.fromkeys(found))
    prefixes = dict.fromkeys(
        token[:end] for token in distinct for end in range(1, min(len(token), MAX_PREFIX) + 1)
    )
    return distinct, tuple(prefixes)


def draft_for(
    user_id: int, filters: ListingFilters, criteria: Criteria, filters_json: bytes
) -> SearchDraft:
    """The search to store, without a picture (see :func:`dataclasses.replace` for one)."""
    return SearchDraft(
        user_id=user_id,
        filters_json=filters_json,
        owner_id=criteria.owner_id,
        min_price_cents=criteria.min_price_cents,
        max_price_cents=criteria.max_price_cents,
        in_stock=criteria.in_stock,
        tags=criteria.tags,
        words=word_tokens(filters.text),
    )
