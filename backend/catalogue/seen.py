"""Provides what the image model sees in pictures, in words, for text search to match.

The vision domain stores, per picture, the classes its model sees (``picture_classes``: class id
and probability) and hands the catalogue a :class:`SeenVocabulary`: the words each class goes by
(its names and every more general kind it belongs to: a golden retriever is a retriever, a dog,
a mammal). A text search then also finds items whose picture shows what the words name, even
when the seller never wrote them: "dog" finds an untagged picture of a beagle.

Those matches rank after the matches in the seller's own words (see
:mod:`backend.catalogue.filters`), and their cards say what the model saw (``looks_like``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from backend.catalogue.textsearch import PhraseMatcher

#: Distinct word lists whose matches are remembered.
_CACHED_SEARCHES: Final = 1024


@dataclass(frozen=True, slots=True)
class SeenMatch:
    """The classes a search's words name, for the engines to look up in ``picture_classes``.

    Attributes:
        classes: Class id to the name a card shows ("golden retriever"), ascending by id.
        threshold: A picture matches when the probabilities of its stored classes among
            ``classes`` add up to at least this.
    """

    classes: Mapping[int, str]
    threshold: float

    @property
    def class_ids(self) -> list[int]:
        """The class ids, ascending."""
        return list(self.classes)


class SeenVocabulary:
    """The words of each class the model knows, matched against a search's words."""

    def __init__(
        self,
        load: Callable[[], tuple[Sequence[str], Sequence[Sequence[str]]]],
        *,
        threshold: float,
    ) -> None:
        """Prepare the vocabulary; ``load`` runs on the first search that needs it.

        Args:
            load: Returns each class's shown name and the phrases it is known by, by class id.
            threshold: See :attr:`SeenMatch.threshold`.
        """
        self._load = load
        self._lock = threading.Lock()
        self._names: Sequence[str] = ()
        self._matcher: PhraseMatcher | None = None
        self.threshold = threshold

    def _ready(self) -> tuple[Sequence[str], PhraseMatcher]:
        with self._lock:
            if self._matcher is None:
                names, documents = self._load()
                self._names, self._matcher = names, PhraseMatcher(documents)
            return self._names, self._matcher

    def match(self, words: tuple[str, ...]) -> SeenMatch | None:
        """The classes ``words`` name (every word among one class's), or ``None`` if none.

        Runs in a few microseconds once cached, a millisecond or so for new words (and about
        0.1 s on the very first search, which builds the index).
        """
        classes = self._match(words)
        return SeenMatch(classes, self.threshold) if classes else None

    @functools.lru_cache(maxsize=_CACHED_SEARCHES)  # noqa: B019 - one per server, never freed
    def _match(self, words: tuple[str, ...]) -> Mapping[int, str]:
        names, matcher = self._ready()
        # Read-only: the cache hands the same mapping to every search with these words.
        return MappingProxyType({class_id: names[class_id] for class_id in matcher.matching(words)})
