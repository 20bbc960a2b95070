"""Provides the words-find-pictures benchmark: text search over untagged pictures, by class name.

A real server with the image model is stocked with the pictures of a labelled set (one folder
per class, the layout ``python -m backend.vision.evaluate`` reads), all untagged, titled
"Picture N" and uploaded in a shuffled order, so that only what the model sees can match. Then
each class name is searched for as a person would type it (``musical_instrument`` as "musical
instrument") and the first batch of 10, newest first, is scored:

* precision: the share of those results that are pictures of the class (over the results
  there are, when fewer than 10);
* recall: the share of the class's pictures that the search finds at all.

The match threshold (:data:`backend.vision.labels.SEEN_THRESHOLD`) applies at search time, so
one stocked server also measures a few others side by side.

The set is ``tests/data/vision-devset`` when it exists, else a few labelled photographs of
``data/demo``. Run alone with ``.venv/bin/python -m tests.bench.bench_words [DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import platformdirs

from backend.config import ServerConfig
from backend.vision.embedder import default_cache_dir
from backend.vision.evaluate import find_pictures
from backend.vision.labels import SEEN_THRESHOLD
from protocol.catalogue_client import browse, iter_items, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from tests.support import running_server
from tests.support.catalogue import account, catalogue

ROOT: Final = Path(__file__).resolve().parents[2]
DEV_SET: Final = ROOT / "tests" / "data" / "vision-devset"
#: Photographs of the demo catalogue, by the class a person would search them by.
DEMO_CLASSES: Final = {
    "cat": ("chelsea-the-cat.jpg",),
    "dog": ("two-dogs-at-the-window.jpg",),
    "fruit": ("citrus-slices.jpg", "fig-in-red-bowl.jpg"),
    "flower": ("orange-dahlia.jpg", "dandelion-clocks.jpg"),
    "insect": ("honey-bee-on-aster.jpg",),
    "cup": ("espresso-cup.jpg",),
    "clock": ("motion-blurred-clock.jpg",),
    "bridge": ("roebling-bridge-at-night.jpg",),
}
FIRST_BATCH: Final = 10
#: Thresholds measured besides the shipped one.
THRESHOLDS: Final = (0.1, 0.2, 0.5)
_SEED: Final = 17


@dataclass(frozen=True)
class QueryResult:
    """How one class name fared as a search."""

    query: str
    results: int
    relevant_in_first: int
    first: int
    found: int
    class_size: int

    @property
    def precision(self) -> float | None:
        """Of the first batch, the share showing the class; ``None`` without results."""
        return self.relevant_in_first / self.first if self.first else None

    @property
    def recall(self) -> float:
        return self.found / self.class_size


def labelled_pictures(directory: Path | None) -> list[tuple[Path, str]]:
    """The pictures to stock, with their class: ``directory``'s, or the default set's."""
    if directory is None and DEV_SET.is_dir():
        directory = DEV_SET
    if directory is not None:
        return [(path, path.parent.name) for path, _ in find_pictures(directory)]
    demo = ROOT / "data" / "demo"
    return [(demo / name, label) for label, names in DEMO_CLASSES.items() for name in names]


async def measure(
    pictures: Sequence[tuple[Path, str]], thresholds: Sequence[float]
) -> dict[float, list[QueryResult]]:
    """Stock a server with ``pictures`` untagged; search every class name at each threshold."""
    cache = default_cache_dir(Path(platformdirs.user_cache_dir("pixmart")))
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-words-") as tmp:
        config = ServerConfig(
            data_dir=Path(tmp) / "data", port=0, enable_vision=True, model_cache_dir=cache
        )
        async with running_server(config) as server, AsyncExitStack() as stack:
            seller = await account(stack, server, "seller")
            buyer = await account(stack, server, "buyer")
            order = list(pictures)
            random.Random(_SEED).shuffle(order)
            label_of: dict[int, str] = {}
            for n, (path, label) in enumerate(order, start=1):
                created = await upload_file(seller, path, ItemMetadata(title=f"Picture {n}"))
                label_of[created.item.id] = label
            sizes = {
                label: sum(1 for _, other in pictures if other == label) for _, label in pictures
            }
            results: dict[float, list[QueryResult]] = {}
            for threshold in thresholds:
                vocabulary = catalogue(server).listings.vocabulary
                assert vocabulary is not None, "the server searches no seen classes"
                vocabulary.threshold = threshold
                results[threshold] = [
                    await _search(buyer, label, label_of, sizes[label]) for label in sorted(sizes)
                ]
            return results


async def _search(
    session: Session, label: str, label_of: dict[int, str], class_size: int
) -> QueryResult:
    filters = ListingFilters(text=label.replace("_", " "))
    first = await browse(session, filters, limit=FIRST_BATCH)
    every = [card async for card in iter_items(session, filters)]
    assert all(card.looks_like is not None for card in every), "a title matched a class name"
    return QueryResult(
        query=label,
        results=len(every),
        relevant_in_first=sum(label_of[card.id] == label for card in first.items),
        first=len(first.items),
        found=sum(label_of[card.id] == label for card in every),
        class_size=class_size,
    )


def summary(found: list[QueryResult]) -> tuple[float, float, int]:
    """Mean precision (over the classes with results), mean recall, classes with results."""
    precisions = [r.precision for r in found if r.precision is not None]
    mean_precision = statistics.fmean(precisions) if precisions else 0.0
    return mean_precision, statistics.fmean(r.recall for r in found), len(precisions)


def rows_of(results: dict[float, list[QueryResult]], pictures: int) -> list[dict[str, Any]]:
    """The benchmark rows: the shipped threshold per class and in all, then the others."""
    rows: list[dict[str, Any]] = []
    for threshold, found in results.items():
        precision, recall, answered = summary(found)
        rows.append(
            {
                "what": "text search finds untagged pictures: precision of the first 10",
                "setting": f"{len(found)} class names, {pictures} pictures, threshold "
                f"{threshold}" + (" (shipped)" if threshold == SEEN_THRESHOLD else ""),
                "median": round(precision, 3),
                "unit": "mean",
                "comparison": f"recall {recall:.3f}; {answered}/{len(found)} names found any",
            }
        )
    for result in results.get(SEEN_THRESHOLD, []):
        rows.append(
            {
                "what": f'text search "{result.query}" over untagged pictures',
                "setting": f"threshold {SEEN_THRESHOLD}, {result.class_size} in the class",
                "median": round(result.precision, 3) if result.precision is not None else "-",
                "unit": f"precision of {result.first}",
                "comparison": f"{result.results} results, recall {result.recall:.2f}",
            }
        )
    return rows


def run(directory: Path | None = None) -> list[dict[str, Any]]:
    """Measure on ``directory`` (or the default set); the rows for ``make bench``."""
    pictures = labelled_pictures(directory)
    thresholds = sorted({SEEN_THRESHOLD, *THRESHOLDS})
    return rows_of(asyncio.run(measure(pictures, thresholds)), len(pictures))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the rows for a set given on the command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_words")
    parser.add_argument("directory", nargs="?", type=Path, help="one folder per class")
    args = parser.parse_args(argv)
    for row in run(args.directory):
        print(
            f"{row['what']} [{row['setting']}]: {row['median']} {row['unit']} ({row['comparison']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
