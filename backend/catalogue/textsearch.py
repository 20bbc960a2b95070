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
    """Which of a fixed set of small documents hold every search word, as whole words.

    For a vocabulary that ships with the product (the names of what the image model sees, see
    :mod:`backend.catalogue.seen`), matched in this process rather than by the engines, so both
    give the same answer. A document is a list of phrases (``["golden retriever", "retriever",
    "dog", ...]``); it matches when each word's tokens appear, in order and next to each other,
    within one of its phrases. Unlike the engines' search of the sellers' words, the last word is
    not a prefix: ``"cat"`` would otherwise find catamarans and cathedrals. A word ending in
    ``s`` also matches its singular (``dogs``, ``peaches``, ``cherries``).
    """

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        """Index ``documents``; a document's id is its position."""
        self._phrases: list[list[tuple[str, ...]]] = []
        self._by_token: dict[str, set[int]] = {}
        for doc_id, phrases in enumerate(documents):
            tokenised = [tokens(phrase) for phrase in phrases]
            self._phrases.append([phrase for phrase in tokenised if phrase])
            for phrase in tokenised:
                for token in phrase:
                    self._by_token.setdefault(token, set()).add(doc_id)

    def __len__(self) -> int:
        return len(self._phrases)

    def matching(self, words: Sequence[str]) -> tuple[int, ...]:
        """The ids, ascending, of the documents holding every one of ``words``.

        Args:
            words: From :func:`search_words`; no words match nothing.
        """
        found: set[int] | None = None
        for word in words:
            holding: set[int] = set()
            for form in _word_forms(word):
                holding |= self._holding(form)
            found = holding if found is None else found & holding
            if not found:
                return ()
        return tuple(sorted(found)) if found else ()

    def _holding(self, phrase: tuple[str, ...]) -> set[int]:
        """The documents with ``phrase`` inside one of their phrases."""
        if not phrase:
            return set()
        candidates = set.intersection(*(self._by_token.get(token, set()) for token in phrase))
        return {
            doc_id
            for doc_id in candidates
            if any(_contains(own, phrase) for own in self._phrases[doc_id])
        }


def _word_forms(word: str) -> list[tuple[str, ...]]:
    """The phrases a search word stands for: its tokens, and its singular if it looks plural."""
    phrase = tokens(word)
    if not phrase or len(phrase[-1]) < 4 or not phrase[-1].endswith("s"):
        return [phrase]
    *head, last = phrase
    singulars = {last[:-1]}
    if last.endswith("ies"):
        singulars.add(last[:-3] + "y")
    elif last.endswith("es"):
        singulars.add(last[:-2])
    return [phrase, *((*head, singular) for singular in sorted(singulars))]


def _contains(phrase: tuple[str, ...], part: tuple[str, ...]) -> bool:
    """Whether ``part`` occurs in ``phrase`` as consecutive tokens."""
    width = len(part)
    return any(phrase[start : start + width] == part for start in range(len(phrase) - width + 1))
