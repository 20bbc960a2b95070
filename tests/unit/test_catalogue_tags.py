"""Tags are trimmed and lower-cased; anything outside [a-z0-9-]{1,32} is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pixmart_data import data_file

from backend.catalogue.tags import (
    MAX_TAGS_PER_ITEM,
    normalise_prefix,
    normalise_tag,
    normalise_tags,
    read_starter_tags,
)
from protocol.errors import BadRequest


@pytest.mark.parametrize(
    ("raw", "tag"), [(" Sky ", "sky"), ("BLACK-and-white", "black-and-white"), ("4k", "4k")]
)
def test_valid_tags_are_normalised(raw: str, tag: str) -> None:
    assert normalise_tag(raw) == tag


@pytest.mark.parametrize("raw", ["", "   ", "two words", "tag!", "café", "a" * 33, "a_b", "a/b"])
def test_invalid_tags_are_refused_by_name(raw: str) -> None:
    with pytest.raises(BadRequest, match="not a valid tag"):
        normalise_tag(raw)


def test_duplicates_collapse_and_the_count_is_bounded() -> None:
    assert normalise_tags(["Sky", "sky ", "sea"]) == ("sky", "sea")
    with pytest.raises(BadRequest, match="at most"):
        normalise_tags([f"t{i}" for i in range(MAX_TAGS_PER_ITEM + 1)])


def test_prefixes() -> None:
    assert normalise_prefix(" Sk") == "sk"
    assert normalise_prefix("") == ""
    assert normalise_prefix("s k") is None


def test_the_shipped_starter_tags_are_valid(tmp_path: Path) -> None:
    tags = read_starter_tags(data_file("starter_tags.txt"))
    assert 30 <= len(tags) <= 60 and len(set(tags)) == len(tags)
    assert all(normalise_tag(tag) == tag for tag in tags)
    odd = tmp_path / "tags.txt"
    odd.write_text("# comment\nSky\n\nnot valid!\nsky  # again\nsea\n", "utf-8")
    assert read_starter_tags(odd) == ["sky", "sea"]
