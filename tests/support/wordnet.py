"""Provides the offline build of ``data/imagenet_hypernyms.txt`` from WordNet 3.0.

Each ImageNet class is a WordNet 3.0 noun synset (its *wnid*, ``n`` and the synset's offset in
``data.noun``). This module finds that synset for every line of ``data/imagenet_labels.txt`` and
writes the synset's hypernyms, so that the server can match "dog" with a golden retriever and
"fruit" with a lemon without shipping or reading WordNet itself::

    python -m tests.support.wordnet            # rewrite data/imagenet_hypernyms.txt
    python -m tests.support.wordnet --check    # exit 1 if the shipped table is stale

WordNet comes from Debian's ``wordnet-base`` package, fetched with ``apt-get download`` and
unpacked with ``dpkg-deb -x`` (no root needed, nothing installed); its ``data.noun`` is parsed
here as ``wndb(5WN)`` describes it, without nltk.

Finding the synset: the labels are the synsets' lemmas (``tabby, tabby cat``), and ILSVRC
numbers its classes in wnid order, so each class's synset is the one whose lemmas are the
class's names, with an offset between its neighbours'. That leaves a choice for 41 classes whose
names several synsets share within those bounds (``crane`` the bird and the machine both fit
the order only one way, ``hammer`` does not): for those, :data:`ILSVRC_CHOICES` pins the
synset ILSVRC-2012 uses. A pinned synset must still have the class's lemmas and fit the order.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from backend.vision.labels import load_labels

#: Where the table is written, relative to the repository.
TABLE: Final = Path(__file__).resolve().parents[2] / "data" / "imagenet_hypernyms.txt"
PACKAGE: Final = "wordnet-base"
#: The noun database inside the package.
DATA_NOUN: Final = Path("usr/share/wordnet/data.noun")
#: Hypernyms at these depths below ``entity`` (entity; physical entity, abstraction; object,
#: matter; whole, part, substance, ...) sit above most classes and say nothing a search could
#: use; ``artifact`` (depth 4) is the first that separates classes.
MIN_DEPTH: Final = 4
#: Pointer symbols of ``data.noun`` that lead to a more general synset.
_HYPERNYM_POINTERS: Final = frozenset({"@", "@i"})

#: The synsets ILSVRC-2012 uses where the labels and the wnid order leave several (class id:
#: wnid); checked, not trusted: each must have the class's lemmas and fit the order.
ILSVRC_CHOICES: Final[dict[int, str]] = {
    102: "n01872401", 398: "n02666196", 411: "n02730930", 417: "n02782093",
    431: "n02804414", 438: "n02815834", 443: "n02834397", 456: "n02879718",
    471: "n02950826", 488: "n02999410", 501: "n03045698", 544: "n03259280",
    549: "n03291819", 586: "n03478589", 587: "n03481172", 594: "n03495258",
    597: "n03527444", 624: "n03661043", 643: "n03724870", 664: "n03782006",
    698: "n03877845", 718: "n03933933", 727: "n03956157", 733: "n03976657",
    745: "n04009552", 753: "n04040759", 758: "n04067472", 766: "n04111531",
    771: "n04125021", 780: "n04147183", 783: "n04153751", 792: "n04208210",
    813: "n04270147", 815: "n04275548", 816: "n04277352", 830: "n04336792",
    866: "n04465501", 902: "n04579432", 910: "n04597913", 982: "n10148035",
    987: "n12144580",
}  # fmt: skip

HEADER: Final = """\
# What each ImageNet class is a kind of, from WordNet 3.0 (Princeton University, under the
# WordNet 3.0 licence; Debian package wordnet-base {version}). Written by
# `python -m tests.support.wordnet`; do not edit.
# One line per class of imagenet_labels.txt, in its order: class id, wnid, then the synset's
# hypernyms (all of them, through every parent), most specific first, separated by " | ";
# each hypernym is its lemmas separated by ", ". The top levels of WordNet (depth < {depth}:
# entity, object, whole, ...) are left out.
"""


@dataclass(frozen=True, slots=True)
class Synset:
    """A noun synset of ``data.noun``: its lemmas and the offsets of its direct hypernyms."""

    offset: int
    lemmas: tuple[str, ...]
    parents: tuple[int, ...]


def parse_data_noun(lines: Iterable[str]) -> dict[int, Synset]:
    """The synsets of a ``data.noun`` file, by offset (``wndb(5WN)``'s data file format).

    A line is ``offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ptr... | gloss`` with
    ``w_cnt`` in hex and each pointer ``symbol offset pos source/target``. Lines starting with
    spaces are the licence header.
    """
    synsets: dict[int, Synset] = {}
    for line in lines:
        if line.startswith(" "):
            continue
        fields = line.split(" | ", 1)[0].split()
        offset, word_count = int(fields[0]), int(fields[3], 16)
        lemmas = tuple(fields[4 + 2 * n].replace("_", " ") for n in range(word_count))
        at = 4 + 2 * word_count
        pointers = [fields[at + 1 + 4 * n : at + 5 + 4 * n] for n in range(int(fields[at]))]
        parents = tuple(
            int(target)
            for symbol, target, pos, _ in pointers
            if symbol in _HYPERNYM_POINTERS and pos == "n"
        )
        synsets[offset] = Synset(offset, lemmas, parents)
    return synsets


def wnid(offset: int) -> str:
    """The ImageNet id of a noun synset."""
    return f"n{offset:08d}"


def class_synsets(labels: Sequence[Sequence[str]], synsets: dict[int, Synset]) -> list[Synset]:
    """The synset of every class (see the module docstring for how it is found).

    Raises:
        ValueError: a class has no synset with its lemmas, or the order leaves a choice that
            :data:`ILSVRC_CHOICES` does not settle consistently.
    """
    by_lemmas: dict[tuple[str, ...], list[int]] = {}
    for synset in synsets.values():
        by_lemmas.setdefault(_folded(synset.lemmas), []).append(synset.offset)
    candidates: list[list[int]] = []
    for class_id, names in enumerate(labels):
        found = sorted(by_lemmas.get(_folded(names), []))
        pinned = ILSVRC_CHOICES.get(class_id)
        if pinned is not None and int(pinned[1:]) in found:
            found = [int(pinned[1:])]
        if not found:
            raise ValueError(f"class {class_id} {names}: no synset has these lemmas")
        candidates.append(found)
    # Offsets grow with class ids: each class's offset lies above the smallest its predecessors
    # allow, and below the largest its successors allow.
    lowest, floor = [], -1
    for found in candidates:
        floor = min((o for o in found if o > floor), default=sys.maxsize)
        lowest.append(floor)
    highest, ceiling = [0] * len(candidates), sys.maxsize
    for class_id in reversed(range(len(candidates))):
        ceiling = max((o for o in candidates[class_id] if o < ceiling), default=-1)
        highest[class_id] = ceiling
    chosen = []
    for class_id, found in enumerate(candidates):
        fitting = [o for o in found if lowest[class_id] <= o <= highest[class_id]]
        if len(fitting) != 1:
            raise ValueError(
                f"class {class_id} {labels[class_id]}: {len(fitting)} synsets fit the order "
                f"({', '.join(map(wnid, fitting))}); pin one in ILSVRC_CHOICES"
            )
        chosen.append(fitting[0])
    return [synsets[offset] for offset in chosen]


def hypernyms(synset: Synset, synsets: dict[int, Synset]) -> list[Synset]:
    """Every more general synset of ``synset`` below :data:`MIN_DEPTH`, most specific first.

    WordNet's hierarchy is a graph (``edible fruit`` is both ``produce`` and ``fruit``), so all
    parents are followed. Most specific is deepest (longest path to the root), then by offset.
    """

    @functools.cache
    def depth(offset: int) -> int:
        parents = synsets[offset].parents
        return 1 + max(map(depth, parents)) if parents else 0

    @functools.cache
    def shallowest(offset: int) -> int:
        parents = synsets[offset].parents
        return 1 + min(map(shallowest, parents)) if parents else 0

    found: set[int] = set()
    pending = list(synset.parents)
    while pending:
        offset = pending.pop()
        if offset not in found:
            found.add(offset)
            pending.extend(synsets[offset].parents)
    kept = [offset for offset in found if shallowest(offset) >= MIN_DEPTH]
    return [synsets[offset] for offset in sorted(kept, key=lambda o: (-depth(o), o))]


def table_lines(labels: Sequence[Sequence[str]], synsets: dict[int, Synset]) -> list[str]:
    """The table's lines (without the header) for ``labels``."""
    lines = []
    for class_id, synset in enumerate(class_synsets(labels, synsets)):
        chain = " | ".join(", ".join(h.lemmas) for h in hypernyms(synset, synsets))
        lines.append(f"{class_id}\t{wnid(synset.offset)}\t{chain}\n")
    return lines


def render_table(data_noun: Path, version: str) -> str:
    """The whole table, header included, from a ``data.noun`` file."""
    with data_noun.open(encoding="utf-8") as handle:
        synsets = parse_data_noun(handle)
    body = "".join(table_lines(load_labels(), synsets))
    return HEADER.format(version=version, depth=MIN_DEPTH) + body


def fetch_wordnet(folder: Path) -> tuple[Path, str]:
    """Download and unpack Debian's ``wordnet-base`` into ``folder``.

    Returns:
        The path of its ``data.noun`` and the package's version.

    Raises:
        RuntimeError: apt-get or dpkg-deb is missing or failed; the message says why.
    """
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise RuntimeError("building the table needs apt-get and dpkg-deb (Debian or Ubuntu)")
    result = subprocess.run([apt, "download", PACKAGE], cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet (updating them needs root).
        subprocess.run([apt, "update"], capture_output=True, text=True)
        result = subprocess.run(
            [apt, "download", PACKAGE], cwd=folder, capture_output=True, text=True
        )
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        raise RuntimeError(f"apt-get download {PACKAGE} failed:\n{result.stderr[-2000:]}")
    version = subprocess.run(
        [dpkg, "--field", str(debs[-1]), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([dpkg, "-x", str(debs[-1]), str(folder / "root")], check=True)
    return folder / "root" / DATA_NOUN, version


def build_table() -> str:
    """The table as WordNet from Debian gives it today."""
    with tempfile.TemporaryDirectory(prefix="pixmart-wordnet-") as scratch:
        data_noun, version = fetch_wordnet(Path(scratch))
        return render_table(data_noun, version)


def _folded(names: Iterable[str]) -> tuple[str, ...]:
    # ImageNet capitalises some names differently from WordNet ("Boxer" is a person).
    return tuple(name.casefold() for name in names)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) ``data/imagenet_hypernyms.txt``; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.wordnet", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare with the shipped one")
    args = parser.parse_args(argv)
    table = build_table()
    if args.check:
        if TABLE.read_text(encoding="utf-8") != table:
            print(f"{TABLE} is stale: run python -m tests.support.wordnet", file=sys.stderr)
            return 1
        print(f"{TABLE} is up to date")
        return 0
    TABLE.write_text(table, encoding="utf-8")
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
