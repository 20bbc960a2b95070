"""Provides the reading of what a person types into a search box as a list of search words.

Both engines search with the same words and the same meaning: an item matches when it holds
every word (in its title, description or tags, any case, accents ignored), the last word as a
prefix, so results follow the person's typing. Each engine turns the words into its own query
syntax (FTS5 phrases in :mod:`backend.catalogue.sqlite_filters`, a ``tsquery`` built in SQL by
the PostgreSQL migration's ``pixmart_search_query``); raw input never reaches either syntax.

A word is a run of word characters; the engines split it further where their tokenizers do
(``"foo_bar"`` is the phrase *foo bar*), which is what the person meant.
"""

from __future__ import annotations

import re
from typing import Final

#: Words beyond this many are ignored; a search box is not a document.
MAX_TERMS: Final = 16
#: Longer words are cut; no real word is this long and index tokens are bounded anyway.
MAX_TERM_LENGTH: Final = 64

_WORD: Final = re.compile(r"\w+")


def search_words(text: str) -> tuple[str, ...]:
    """Return the casefolded words of ``text`` to search for; empty when it holds none.

    Args:
        text: What the person typed, as is.
    """
    return tuple(word[:MAX_TERM_LENGTH] for word in _WORD.findall(text.casefold())[:MAX_TERMS])
