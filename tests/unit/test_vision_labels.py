"""Tests for ImageNet labels and tag suggestions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from backend.vision.labels import (
    class_name,
    load_labels,
    normalise_tag,
    suggest_tags,
)

TAG = re.compile(r"^[a-z0-9-]{1,32}$")


def _probabilities(**by_class: float) -> np.ndarray:
    probabilities = np.zeros(1000, np.float32)
    for class_id, value in by_class.items():
        probabilities[int(class_id.removeprefix("c"))] = value
    return probabilities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tabby cat", "tabby-cat"),
        ("Egyptian cat", "egyptian-cat"),
        ("jack-o'-lantern", "jack-o-lantern"),
        ("R.V.", "rv"),
        ("  Café  au lait ", "cafe-au-lait"),
        ("--", None),
        ("", None),
        ("x" * 33, None),
        ("x" * 32, "x" * 32),
    ],
)
def test_normalise_tag(text: str, expected: str | None) -> None:
    assert normalise_tag(text) == expected


def test_shipped_labels_have_1000_classes_and_valid_tags() -> None:
    labels = load_labels()
    assert len(labels) == 1000
    assert labels[281][:2] == ("tabby", "tabby cat")
    assert class_name(967) == "espresso"
    # Every class yields at least one usable tag.
    assert all(any(normalise_tag(name) for name in names) for names in labels)


def test_suggestions_are_ordered_deduplicated_and_thresholded() -> None:
    probabilities = _probabilities(c285=0.38, c282=0.33, c281=0.16, c287=0.03)
    tags = suggest_tags(probabilities, threshold=0.1)
    assert [t.tag for t in tags] == ["egyptian-cat", "tiger-cat", "tabby", "tabby-cat"]
    assert (tags[0].tag, tags[0].class_id) == ("egyptian-cat", 285)
    assert tags[0].probability == pytest.approx(0.38)
    assert all(TAG.match(t.tag) for t in tags)
    assert [t.tag for t in suggest_tags(probabilities, threshold=0.1, synonyms_per_class=1)] == [
        "egyptian-cat", "tiger-cat", "tabby"]
    assert suggest_tags(probabilities, threshold=0.5) == []
    assert len(suggest_tags(probabilities, top_k=1, threshold=0.0)) == 1


def test_repeated_tag_keeps_its_highest_probability(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    names = [f"class {i}" for i in range(1000)]
    names[1] = "crane"
    names[2] = "crane, derrick"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    labels = load_labels(path)
    tags = suggest_tags(_probabilities(c1=0.2, c2=0.6), labels=labels, threshold=0.1)
    assert [(t.tag, t.class_id) for t in tags] == [("crane", 2), ("derrick", 2)]


def test_wrong_number_of_probabilities_is_rejected() -> None:
    with pytest.raises(ValueError):
        suggest_tags(np.zeros(10))


def test_malformed_labels_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_labels(path)
