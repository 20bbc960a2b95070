"""What each ImageNet class is a kind of: the offline WordNet build, the shipped table, its use.

The build runs here on a small ``data.noun`` written by the test; that the shipped table is what
Debian's WordNet gives today is checked by ``tests/integration/test_wordnet_table.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pixmart_data import data_file

from backend.catalogue.seen import SeenVocabulary
from backend.catalogue.textsearch import search_words
from backend.vision.labels import (
    NUM_LABELS,
    SeenClass,
    class_words,
    load_hypernyms,
    load_labels,
    seen_classes,
)
from tests.support.wordnet import (
    Synset,
    class_synsets,
    hypernyms,
    parse_data_noun,
    table_lines,
)

#: A corner of WordNet in data.noun's format: entity > physical entity > object > whole > living
#: thing > dog, a retriever that is also (through a second parent) a pet, and two cranes.
DATA_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00001740 03 n 01 entity 0 000 | that which exists
00001930 03 n 01 physical_entity 0 001 @ 00001740 n 0000 | an entity that has physical existence
00002684 03 n 02 object 0 physical_object 0 001 @ 00001930 n 0000 | a tangible thing
00003553 03 n 02 whole 0 unit 0 001 @ 00002684 n 0000 | an assemblage of parts
00004258 03 n 02 living_thing 0 animate_thing 0 001 @ 00003553 n 0000 | a living entity
00005000 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 00004258 n 0000 | a dog
00006000 05 n 01 pet 0 002 @ 00004258 n 0000 + 01234567 v 0101 | a domesticated animal
00007000 05 n 02 golden_retriever 0 retriever 1 002 @ 00005000 n 0000 @i 00006000 n 0000 | a dog
00008000 05 n 01 crane 0 001 @ 00004258 n 0000 | a bird
00009000 06 n 01 crane 0 001 @ 00003553 n 0000 | a machine
00010000 06 n 0a a 0 b 0 c 0 d 0 e 0 f 0 g 0 h 0 i 0 j 0 000 | ten lemmas (w_cnt is hex)
"""


@pytest.fixture
def synsets() -> dict[int, Synset]:
    return parse_data_noun(DATA_NOUN.splitlines())


def test_data_noun_lines_become_synsets_with_their_noun_hypernyms(
    synsets: dict[int, Synset],
) -> None:
    assert synsets[5000] == Synset(5000, ("dog", "domestic dog", "Canis familiaris"), (4258,))
    assert synsets[7000].parents == (5000, 6000)  # instance hypernyms too
    assert synsets[6000].parents == (4258,)  # not the verb it is derived from
    assert synsets[1740].parents == ()
    assert len(synsets[10000].lemmas) == 10


def test_hypernyms_follow_every_parent_below_the_top_levels(synsets: dict[int, Synset]) -> None:
    chain = hypernyms(synsets[7000], synsets)
    # Most specific first; entity, object and whole (depth < 4) are left out.
    assert [synset.lemmas[0] for synset in chain] == ["dog", "pet", "living thing"]


def test_classes_find_their_synset_by_lemmas_and_order(synsets: dict[int, Synset]) -> None:
    labels = [("golden retriever", "retriever"), ("crane",), ("Crane",)]
    assert [synset.offset for synset in class_synsets(labels, synsets)] == [7000, 8000, 9000]
    lines = table_lines([("dog", "domestic dog", "Canis familiaris")], synsets)
    assert lines == ["0\tn00005000\tliving thing, animate thing\n"]


def test_a_class_the_order_does_not_settle_is_refused(synsets: dict[int, Synset]) -> None:
    with pytest.raises(ValueError, match="2 synsets fit the order"):
        class_synsets([("crane",)], synsets)
    with pytest.raises(ValueError, match="no synset has these lemmas"):
        class_synsets([("unicorn",)], synsets)


def test_the_shipped_table_has_every_class_in_wnid_order() -> None:
    rows = [
        line.split("\t")
        for line in data_file("imagenet_hypernyms.txt").read_text("utf-8").splitlines()
        if not line.startswith("#")
    ]
    assert [int(row[0]) for row in rows] == list(range(NUM_LABELS))
    wnids = [row[1] for row in rows]
    assert wnids == sorted(set(wnids)) and wnids[0] == "n01440764"  # tench
    kinds = load_hypernyms()
    assert len(kinds) == NUM_LABELS
    assert {"retriever", "dog", "mammal", "animal"} <= set(kinds[207])  # golden retriever
    assert {"citrus", "edible fruit", "fruit"} <= set(kinds[951])  # lemon
    assert "fruit" in kinds[954]  # banana
    assert not {"entity", "object", "whole"} & {name for names in kinds for name in names}


def test_a_damaged_table_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "hypernyms.txt"
    table.write_text("# header\n0\tn01440764\tfish\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 1000 lines"):
        load_hypernyms(table)


def test_words_name_every_class_they_are_a_kind_of() -> None:
    vocabulary = SeenVocabulary(class_words, threshold=0.3)
    labels = load_labels()
    dog = vocabulary.match(search_words("dog"))
    assert dog is not None and dog.threshold == 0.3
    # Every breed from the Chihuahua (151) to the Mexican hairless (268).
    assert set(range(151, 269)) <= set(dog.classes)
    assert dog.classes[207] == "golden retriever" == labels[207][0]
    fruit = vocabulary.match(search_words("fruit"))
    assert fruit is not None
    assert {951: "lemon", 954: "banana", 948: "Granny Smith"}.items() <= fruit.classes.items()
    assert set(fruit.classes) <= set(range(940, 1000))  # fruit, not fruit bats
    assert vocabulary.match(search_words("xylophonist")) is None


def test_a_pictures_seen_classes_are_its_most_probable_ones() -> None:
    probabilities = np.zeros(NUM_LABELS, np.float32)
    probabilities[[207, 208, 951, 3, 4, 5]] = [0.41237, 0.2, 0.2, 0.06, 0.04, 0.09]
    assert seen_classes(probabilities) == [
        SeenClass(207, 0.4124),
        SeenClass(208, 0.2),  # ties by class id
        SeenClass(951, 0.2),
        SeenClass(5, 0.09),
        SeenClass(3, 0.06),
    ]
    assert seen_classes(probabilities, top_k=2) == [SeenClass(207, 0.4124), SeenClass(208, 0.2)]
    assert seen_classes(probabilities, floor=0.3) == [SeenClass(207, 0.4124)]
    with pytest.raises(ValueError, match="expected 1000 probabilities"):
        seen_classes(np.zeros(10))
