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
import unicodedata
from collections.abc import Sequence
from typing import Final

#: Words beyond this many are ignored; a search box is not a document.
MAX_TERMS: Final = 16
#: Longer words are cut; no real word is this long and index tokens are bounded anyway.
MAX_TERM_LENGTH: Final = 64

_WORD: Final = re.compile(r"\w+")
#: A token of the engines' tokenizers: letters and digits (``\w`` without ``_``).
_TOKEN: Final = re.compile(r"[^\W_]+")


def search_words(text: str) -> tuple[str, ...]:
    """Return the casefolded words of ``text`` to search for; empty when it holds none.

    Args:
        text: What the person typed, as is.
    """
    return tuple(word[:MAX_TERM_LENGTH] for word in _WORD.findall(text.casefold())[:MAX_TERMS])


def tokens(text: str) -> tuple[str, ...]:
    """The tokens the engines index ``text`` as: runs of letters and digits, accents removed.

    As FTS5's ``unicode61 remove_diacritics 2`` and the PostgreSQL migration's
    ``pixmart_search_text`` split it: every character that is not a letter or a digit (``_`` and
    ``-`` too) separates tokens, case is folded and combining marks are dropped.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return tuple(_TOKEN.findall(bare))


class PhraseMatcher:
    """Which of a fixed set of small documents have a name that the search words end.

    For a vocabulary that ships with the product (the names of what the image model sees, see
    :mod:`backend.catalogue.seen`), matched in this process rather than by the engines, so both
    give the same answer. A document is a list of names (``["golden retriever", "retriever",
    "sporting dog", "dog", ...]``); it matches when the search's words, together, are the end of
    one of its names: in English the last word of a compound names what it is, so ``"dog"``
    matches ``"sporting dog"`` but ``"house"`` does not match ``"house cat"``, nor ``"horse"``
    ``"horse cart"``. Words are whole (``"cat"`` would otherwise find catamarans and
    cathedrals), and a last word ending in ``s`` also matches its singular (``dogs``,
    ``peaches``, ``cherries``).
    """

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        """Index ``documents``; a document's id is its position."""
        self._by_ending: dict[tuple[str, ...], set[int]] = {}
        for doc_id, names in enumerate(documents):
            for name in names:
                phrase = tokens(name)
                for start in range(len(phrase)):
                    self._by_ending.setdefault(phrase[start:], set()).add(doc_id)

    def matching(self, words: Sequence[str]) -> tuple[int, ...]:
        """The ids, ascending, of the documents with a name that ``words`` end.

        Args:
            words: From :func:`search_words`; no words match nothing.
        """
        phrase = tuple(token for word in words for token in tokens(word))
        found: set[int] = set()
        for form in _phrase_forms(phrase):
            found |= self._by_ending.get(form, set())
        return tuple(sorted(found))


def _phrase_forms(phrase: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The phrases the search stands for: its tokens, and with its last one's singular if it
    looks plural."""
    if not phrase or len(phrase[-1]) < 4 or not phrase[-1].endswith("s"):
        return [phrase] if phrase else []
    *head, last = phrase
    singulars = {last[:-1]}
    if last.endswith("ies"):
        singulars.add(last[:-3] + "y")
    elif last.endswith("es"):
        singulars.add(last[:-2])
    return [phrase, *((*head, singular) for singular in sorted(singulars))]
