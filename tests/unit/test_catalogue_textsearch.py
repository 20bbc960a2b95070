"""The search box's text becomes safe FTS5: quoted words, the last one a prefix."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.catalogue.textsearch import MAX_TERMS, fts_query


@pytest.fixture(scope="module")
def index() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2')"
    )
    db.executemany(
        "INSERT INTO t (title, body) VALUES (?, ?)",
        [("Red sunset", "over the sea"), ("Café au lait", "near the window"), ("NEAR", "AND OR")],
    )
    yield db
    db.close()


def matches(db: sqlite3.Connection, text: str) -> list[str]:
    query = fts_query(text)
    if query is None:
        return ["<no filter>"]
    return [row[0] for row in db.execute("SELECT title FROM t WHERE t MATCH ?", (query,))]


def test_words_are_quoted_and_the_last_is_a_prefix() -> None:
    assert fts_query("Red  sun") == '"red" "sun"*'
    assert fts_query("title:red OR x") == '"title" "red" "or" "x"*'
    assert fts_query(' "* ( ) - ^ ') is None
    assert fts_query("") is None
    long_query = fts_query(" ".join(f"w{i}" for i in range(40)))
    assert long_query is not None and long_query.count('"') == 2 * MAX_TERMS


def test_meaning_follows_the_words(index: sqlite3.Connection) -> None:
    assert matches(index, "sunse") == ["Red sunset"]
    assert matches(index, "cafe LAIT") == ["Café au lait"]
    assert matches(index, "near") == ["Café au lait", "NEAR"]  # a word, not the NEAR operator
    assert matches(index, "red NOT sea") == []  # NOT is a word here, and no row has it
    assert matches(index, "title:red") == []  # no column filter
    assert matches(index, "***") == ["<no filter>"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_a_valid_query(text: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5(title, tokenize = 'unicode61 remove_diacritics 2')"
    )
    query = fts_query(text)
    if query is not None:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()
    db.close()
