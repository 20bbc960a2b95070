"""Provides ``python -m backend.vision.evaluate DIR``: retrieval quality of the embeddings.

Every subfolder of DIR is a class. Each picture goes through exactly the upload pipeline:
validation (:func:`backend.media.validate.inspect_image`, so files an upload would refuse are
skipped), the media decoder's model picture (:func:`backend.media.derivatives.decode_for_model`:
upright, sRGB, white background), :func:`backend.vision.preprocess.preprocess` and the
:class:`Embedder`. Each picture is then a query against all the others (leave-one-out, cosine).
P@k is the share of a query's k nearest neighbours that belong to its class, averaged over
queries. Images per second covers the whole pipeline: validation, decoding, preprocessing and
the network.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from backend.media.derivatives import decode_for_model
from backend.media.errors import MediaError
from backend.media.validate import inspect_image
from backend.vision.embedder import Embedder, default_cache_dir
from backend.vision.preprocess import preprocess

KS: Final = (1, 5, 10)
_BATCH: Final = 32
# Similarity rows computed at once: bounds memory to _QUERY_CHUNK * N floats.
_QUERY_CHUNK: Final = 1024


@dataclass(frozen=True, slots=True)
class Report:
    """Outcome of one evaluation run."""

    precision: dict[int, float]
    images: int
    classes: int
    images_per_second: float
    skipped: int

    def as_json(self) -> dict[str, float | int]:
        """Return the report with the keys ``--json`` prints."""
        return {
            **{f"p@{k}": round(value, 4) for k, value in self.precision.items()},
            "images": self.images,
            "classes": self.classes,
            "images_per_second": round(self.images_per_second, 1),
        }


def find_pictures(root: Path) -> list[tuple[Path, int]]:
    """Return ``(file, class index)`` for every file in the class subfolders of ``root``."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [
        (path, label)
        for label, folder in enumerate(folders)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    ]


def precision_at_k(
    embeddings: NDArray[np.float32], labels: NDArray[np.int64], ks: Sequence[int] = KS
) -> dict[int, float]:
    """Return leave-one-out P@k for unit ``embeddings`` with class ``labels``.

    Neighbours are ranked by cosine similarity, ties by position, the query itself excluded.
    """
    count = len(embeddings)
    depth = min(max(ks), count - 1)
    if depth < 1:
        raise ValueError("need at least two pictures")
    hits = {k: 0.0 for k in ks}
    for start in range(0, count, _QUERY_CHUNK):
        stop = min(count, start + _QUERY_CHUNK)
        scores = embeddings[start:stop] @ embeddings.T
        scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # leave one out
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        # Sort the shortlist by score descending, then index, so ties are deterministic.
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        ranked = np.take_along_axis(top, order, axis=1)
        same = labels[ranked] == labels[start:stop, None]
        for k in ks:
            hits[k] += float(same[:, :k].mean(axis=1).sum())
    return {k: hits[k] / count for k in ks}


def load_picture(path: Path) -> NDArray[np.uint8]:
    """Return the network input for the file at ``path``, as an upload of it would get.

    Raises:
        MediaError: An upload of this file would be refused.
    """
    return preprocess(decode_for_model(path, inspect_image(path)))


def evaluate(root: Path, embedder: Embedder) -> Report:
    """Embed every picture under ``root`` and measure retrieval precision."""
    pictures = find_pictures(root)
    embeddings: list[NDArray[np.float32]] = []
    labels: list[int] = []
    skipped = 0
    started = time.perf_counter()
    pending: list[NDArray[np.uint8]] = []
    pending_labels: list[int] = []

    def flush() -> None:
        if pending:
            embeddings.append(embedder.embed(np.stack(pending)).embeddings)
            labels.extend(pending_labels)
            pending.clear()
            pending_labels.clear()

    for path, label in pictures:
        try:
            pending.append(load_picture(path))
        except (MediaError, OSError) as exc:
            # Stray non-image files (README, .DS_Store...) are common in such folders.
            print(f"skipping {path}: {exc}", file=sys.stderr)
            skipped += 1
            continue
        pending_labels.append(label)
        if len(pending) == _BATCH:
            flush()
    flush()
    elapsed = time.perf_counter() - started
    if len(labels) < 2:
        raise ValueError(f"{root}: need at least two pictures in class subfolders")
    matrix = np.concatenate(embeddings)
    label_array = np.asarray(labels, dtype=np.int64)
    return Report(
        precision=precision_at_k(matrix, label_array),
        images=len(labels),
        classes=len(np.unique(label_array)),
        images_per_second=len(labels) / elapsed if elapsed > 0 else float("inf"),
        skipped=skipped,
    )


def default_model_cache() -> Path:
    """Return the model cache a command line uses: the user's cache folder, keyed by weights."""
    import platformdirs

    return default_cache_dir(Path(platformdirs.user_cache_dir("pixmart")))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m backend.vision.evaluate",
        description="Leave-one-out retrieval precision of pixmart's image embeddings.",
    )
    parser.add_argument("directory", type=Path, help="folder whose subfolders are classes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache folder")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a folder")
    embedder = Embedder(args.cache_dir or default_model_cache())
    try:
        report = evaluate(args.directory, embedder)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        for k, value in report.precision.items():
            print(f"P@{k:<3} {value:.4f}")
        print(f"images  {report.images} in {report.classes} classes"
              + (f" ({report.skipped} files skipped)" if report.skipped else ""))
        print(f"speed   {report.images_per_second:.1f} images/s"
              " (validate, decode, preprocess, embed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
