"""The search box's text becomes search words, and safe FTS5: quoted words, the last a prefix.

The same words on PostgreSQL, and both engines' results, are in the catalogue contract suite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.catalogue.sqlite_filters import fts_query
from backend.catalogue.textsearch import (
    MAX_TERM_LENGTH,
    MAX_TERMS,
    PhraseMatcher,
    search_words,
    tokens,
)


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
    words = search_words(text)
    if not words:
        return ["<no filter>"]
    query = fts_query(words)
    return [row[0] for row in db.execute("SELECT title FROM t WHERE t MATCH ?", (query,))]


def test_words_are_casefolded_and_bounded() -> None:
    assert search_words("Red  SUN") == ("red", "sun")
    assert search_words(' "* ( ) - ^ ') == ()
    assert search_words("") == ()
    assert search_words("foo_bar 3.5 Café") == ("foo_bar", "3", "5", "café")
    assert len(search_words(" ".join(f"w{i}" for i in range(40)))) == MAX_TERMS
    assert search_words("x" * 100) == ("x" * MAX_TERM_LENGTH,)


def test_words_are_quoted_and_the_last_is_a_prefix() -> None:
    assert fts_query(("red", "sun")) == '"red" "sun"*'
    assert fts_query(search_words("title:red OR x")) == '"title" "red" "or" "x"*'


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
    words = search_words(text)
    if words:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (fts_query(words),)).fetchall()
    db.close()


# -- matching a shipped vocabulary in this process ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["Crème brûlée", "foo_bar-baz", "Lens 3.5 mm", "Ångström's café", "R.V., jack-o'-lantern"],
)
def test_tokens_are_those_of_the_fts5_tokenizer(text: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')"
    )
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    db.execute("INSERT INTO t (body) VALUES (?)", (text,))
    indexed = [row[0] for row in db.execute("SELECT term FROM v ORDER BY offset")]
    db.close()
    assert tokens(text) == tuple(indexed)


DOCUMENTS = [
    ["golden retriever", "retriever", "sporting dog", "dog", "domestic dog"],
    ["tabby", "tabby cat", "house cat", "cat"],
    ["catamaran", "boat"],
    ["hotdog", "hot dog", "red hot"],
    ["cherry", "edible fruit", "fruit"],
    ["peach", "edible fruit", "fruit"],
    ["crème brûlée", "custard"],
    ["horse cart", "cart"],
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dog", (0, 3)),  # "hot dog" ends with dog too
        ("DOGS", (0, 3)),  # a plural finds the singular
        ("golden retriever", (0,)),
        ("sporting dog", (0,)),
        ("sporting_dog", (0,)),
        ("retriever golden", ()),  # the words, in order, end a name
        ("golden", ()),  # ...so a word that only starts one does not
        ("house", ()),  # a house cat is a cat, not a house
        ("horse", ()),
        ("cat", (1,)),  # whole words: not the catamaran
        ("ca", ()),
        ("cherries", (4,)),
        ("peaches", (5,)),
        ("fruit", (4, 5)),
        ("edible fruits", (4, 5)),
        ("creme brulee", (6,)),  # accents folded
        ("dog cat", ()),
        ("", ()),
    ],
)
def test_a_phrase_matcher_finds_documents_with_a_name_the_words_end(
    text: str, expected: tuple[int, ...]
) -> None:
    assert PhraseMatcher(DOCUMENTS).matching(search_words(text)) == expected
