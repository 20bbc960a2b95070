"""Titles from file names and typed tag lists come out the same in the TUI and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.listing_fields import MAX_TAGS, parse_tags, title_from_filename


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("red_bike-02.jpg", "Red bike 02"),
        ("sunset_beach-02.jpg", "Sunset beach 02"),
        ("red.bike 02.jpg", "Red bike 02"),  # dots and spaces separate words too
        ("already Nice.webp", "Already Nice"),
        ("  __.png", "Untitled"),
        ("_.png", "Untitled"),
        (f"{'a' * 300}.png", "A" + "a" * 199),
    ],
)
def test_titles_from_file_names(name: str, title: str) -> None:
    assert title_from_filename(Path(name)) == title


def test_tags_are_split_trimmed_and_kept_once() -> None:
    assert parse_tags("cat, Print ,  cat,,CAT , ") == ["cat", "Print"]
    assert parse_tags("") == []
    assert len(parse_tags(",".join(f"t{i}" for i in range(MAX_TAGS)))) == MAX_TAGS
    with pytest.raises(ValueError, match=str(MAX_TAGS)):
        parse_tags(",".join(f"t{i}" for i in range(MAX_TAGS + 1)))
