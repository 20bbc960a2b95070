"""Provides the translation of what a person types into a safe SQLite FTS5 query.

Raw input never reaches ``MATCH``: FTS5 has its own syntax (``AND``, ``NEAR``, column filters,
``^``, ``*``, quotes) in which a stray character is a syntax error and a crafted one changes the
meaning. Only word characters survive; every word is quoted, so it is a literal phrase, and the
last one matches as a prefix, so results follow the person's typing.
"""

from __future__ import annotations

import re
from typing import Final

#: Words beyond this many are ignored; a search box is not a document.
MAX_TERMS: Final = 16
#: Longer words are cut; no real word is this long and FTS5 tokens are bounded anyway.
MAX_TERM_LENGTH: Final = 64

_WORD: Final = re.compile(r"\w+")


def fts_query(text: str) -> str | None:
    """Return an FTS5 expression matching items that contain every word of ``text``.

    Args:
        text: What the person typed, as is.

    Returns:
        Quoted terms joined by spaces (FTS5's implicit AND), the last one a prefix, e.g.
        ``'"red" "bicyc"*'``; ``None`` when ``text`` holds no word at all.
    """
    words = [word[:MAX_TERM_LENGTH] for word in _WORD.findall(text.casefold())][:MAX_TERMS]
    if not words:
        return None
    # \w never matches '"', so quoting needs no escaping; the tokenizer splits '_' inside quotes
    # into a phrase, which is what the person meant.
    terms = [f'"{word}"' for word in words]
    terms[-1] += "*"
    return " ".join(terms)
