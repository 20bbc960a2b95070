"""The shipped ``data/imagenet_hypernyms.txt`` is what WordNet, from Debian today, gives.

Slow for a test (about 10 s: it downloads Debian's 6 MB ``wordnet-base`` package and parses its
82,000 noun synsets), and it needs apt-get; it is the one check that the table was made by
``tests/support/wordnet.py`` from WordNet and that nobody edited it by hand.
"""

from __future__ import annotations

from tests.support.wordnet import TABLE, build_table


def test_the_shipped_table_is_rebuilt_from_wordnet_unchanged() -> None:
    assert build_table() == TABLE.read_text(encoding="utf-8")
