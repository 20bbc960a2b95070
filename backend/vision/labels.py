"""Provides ImageNet class names, what each class is a kind of, and what a picture shows.

``data/imagenet_labels.txt`` holds one class a line (line number = class id), synonyms separated
by commas, e.g. ``tabby, tabby cat``. ``data/imagenet_hypernyms.txt`` holds, per class, the more
general WordNet synsets it belongs to (a golden retriever is a retriever, a dog, a mammal, ...;
written offline by ``python -m tests.support.wordnet``).

From a picture's class probabilities come tag suggestions, in the product's tag syntax (lower
case, words joined by ``-``, only ``[a-z0-9-]``, 1 to 32 characters), and the classes the
picture is indexed under for text search (:func:`seen_classes`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from pixmart_data import data_file

from backend.catalogue.tags import MAX_TAG_LENGTH

NUM_LABELS: Final = 1000
#: The classes a picture is indexed under: its most probable ones, down to this probability.
#: Text search then wants the probabilities of the classes a query names to add up to
#: :data:`SEEN_THRESHOLD`, so a dog the model cannot place among five breeds is still a dog.
SEEN_TOP_K: Final = 5
SEEN_FLOOR: Final = 0.05
SEEN_THRESHOLD: Final = 0.3
#: Which way of picking :func:`seen_classes` made a picture's stored classes; raising it has the
#: stored pictures re-labelled in the background.
LABELS_VERSION: Final = 1
_NOT_TAG_CHARS: Final = re.compile(r"[^a-z0-9-]+")
_HYPHEN_RUNS: Final = re.compile(r"-{2,}")


@dataclass(frozen=True, slots=True)
class TagSuggestion:
    """A tag proposed for a picture, with the probability of the class it came from."""

    tag: str
    probability: float
    class_id: int


@dataclass(frozen=True, slots=True)
class SeenClass:
    """A class the model sees in a picture, with its probability (rounded to 4 decimals)."""

    class_id: int
    probability: float


def normalise_tag(text: str) -> str | None:
    """Return ``text`` in tag syntax, or ``None`` if nothing (or too much) is left.

    Accents are stripped (``café`` -> ``cafe``), spaces become hyphens, other characters are
    dropped (``jack-o'-lantern`` -> ``jack-o-lantern``). Names longer than 32 characters are
    rejected rather than cut, since a truncated name reads as a different word.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    tag = _NOT_TAG_CHARS.sub("", ascii_text.strip().lower().replace(" ", "-"))
    tag = _HYPHEN_RUNS.sub("-", tag).strip("-")
    if not tag or len(tag) > MAX_TAG_LENGTH:
        return None
    return tag


def load_labels(path: Path | None = None) -> tuple[tuple[str, ...], ...]:
    """Return each class's synonyms, indexed by class id.

    Args:
        path: A labels file; defaults to the shipped ``data/imagenet_labels.txt`` (cached).

    Raises:
        ValueError: The file does not have exactly 1000 non-empty lines.
    """
    if path is None:
        return _shipped_labels()
    return _parse_labels(path)


@functools.cache
def _shipped_labels() -> tuple[tuple[str, ...], ...]:
    return _parse_labels(data_file("imagenet_labels.txt"))


def _parse_labels(path: Path) -> tuple[tuple[str, ...], ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    classes = tuple(
        tuple(name.strip() for name in line.split(",") if name.strip()) for line in lines
    )
    if len(classes) != NUM_LABELS or not all(classes):
        raise ValueError(f"{path}: expected {NUM_LABELS} non-empty class lines")
    return classes


def load_hypernyms(path: Path | None = None) -> tuple[tuple[str, ...], ...]:
    """Return, per class id, the names of every more general class it belongs to.

    Args:
        path: A hypernym table; defaults to the shipped ``data/imagenet_hypernyms.txt`` (cached).

    Raises:
        ValueError: The table does not hold one line per class, in class order.
    """
    if path is None:
        return _shipped_hypernyms()
    return _parse_hypernyms(path)


@functools.cache
def _shipped_hypernyms() -> tuple[tuple[str, ...], ...]:
    return _parse_hypernyms(data_file("imagenet_hypernyms.txt"))


def _parse_hypernyms(path: Path) -> tuple[tuple[str, ...], ...]:
    rows = [
        line.split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    if [row[0] for row in rows] != [str(n) for n in range(NUM_LABELS)] or any(
        len(row) != 3 for row in rows
    ):
        raise ValueError(f"{path}: expected {NUM_LABELS} lines 'class id, wnid, hypernyms'")
    return tuple(
        tuple(name for synset in row[2].split(" | ") for name in synset.split(", ") if name)
        for row in rows
    )


def class_words() -> tuple[list[str], list[tuple[str, ...]]]:
    """What text search knows each class by, by class id.

    Returns:
        The name a match shows ("golden retriever"), and every name the class goes by: its own,
        then those of the more general classes it belongs to ("retriever", "dog", ...).
    """
    labels, kinds = _shipped_labels(), _shipped_hypernyms()
    return [names[0] for names in labels], [
        names + more for names, more in zip(labels, kinds, strict=True)
    ]


def class_name(class_id: int) -> str:
    """Return the first (most common) name of an ImageNet class."""
    return _shipped_labels()[class_id][0]


def suggest_tags(
    probabilities: NDArray[np.floating],
    *,
    top_k: int = 5,
    threshold: float = 0.1,
    synonyms_per_class: int = 2,
    labels: tuple[tuple[str, ...], ...] | None = None,
) -> list[TagSuggestion]:
    """Propose tags for a picture from its class probabilities.

    Args:
        probabilities: float [1000] softmax output for one picture.
        top_k: How many of the most likely classes to consider.
        threshold: Classes less likely than this are not suggested.
        synonyms_per_class: Names taken per class: its first name, then further synonyms.
        labels: Class names; defaults to the shipped ImageNet labels.

    Returns:
        Distinct tags, most probable first; a tag reached from several classes keeps its
        highest probability.
    """
    names = _shipped_labels() if labels is None else labels
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if scores.shape != (len(names),):
        raise ValueError(f"expected {len(names)} probabilities, got {scores.shape}")
    top_k = max(0, min(top_k, len(scores)))
    if top_k == 0:
        return []
    candidates = np.argpartition(-scores, top_k - 1)[:top_k]
    # Most probable first; equal probabilities by class id so output is deterministic.
    ordered = sorted(candidates.tolist(), key=lambda c: (-scores[c], c))
    best: dict[str, TagSuggestion] = {}
    for class_id in ordered:
        probability = float(scores[class_id])
        if probability < threshold:
            break
        taken = 0
        for synonym in names[class_id]:
            if taken >= synonyms_per_class:
                break
            tag = normalise_tag(synonym)
            if tag is None:
                continue
            taken += 1
            if tag not in best:
                best[tag] = TagSuggestion(tag, probability, class_id)
    return list(best.values())


def seen_classes(
    probabilities: NDArray[np.floating],
    *,
    top_k: int = SEEN_TOP_K,
    floor: float = SEEN_FLOOR,
) -> list[SeenClass]:
    """The classes a picture is indexed under for text search, most probable first.

    Args:
        probabilities: float [1000] softmax output for one picture.
        top_k: At most this many classes.
        floor: Less probable classes are left out.
    """
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if scores.shape != (NUM_LABELS,):
        raise ValueError(f"expected {NUM_LABELS} probabilities, got {scores.shape}")
    top_k = max(0, top_k)
    # Stable: equal probabilities by class id, so the same picture always gets the same rows.
    ordered = np.argsort(-scores, kind="stable")[:top_k]
    return [
        SeenClass(int(class_id), round(float(scores[class_id]), 4))
        for class_id in ordered.tolist()
        if scores[class_id] >= floor
    ]
