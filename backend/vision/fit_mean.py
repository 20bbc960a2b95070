"""Provides ``python -m backend.vision.fit_mean DIR... --out FILE``: fit the shipped mean embedding.

Every picture under the folders given goes through the upload pipeline
(:func:`backend.vision.evaluate.load_picture`: validation, decoding, preprocessing) and the int8
network; the mean of their uncentred descriptors (:func:`backend.vision.pooling.describe`) is
written as :mod:`backend.vision.centring` reads it, with a header naming the folders and the
model version.
It prints the new file's SHA-256: put it in :data:`backend.vision.centring.MEAN_SHA256` (and
bump the pipeline revision).

The shipped mean was fitted on the development set and the demo photographs::

    python -m backend.vision.fit_mean tests/data/vision-devset data/demo \\
        --out data/vision_embedding_mean.txt
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from backend.media.errors import MediaError
from backend.vision.centring import format_mean
from backend.vision.embedder import MODEL_VERSION, Embedder
from backend.vision.evaluate import default_model_cache, load_picture
from backend.vision.types import EMBEDDING_DIM

_BATCH: Final = 32
_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})


def picture_files(folders: Sequence[Path]) -> list[Path]:
    """Return the picture files under ``folders`` (recursively), in a stable order."""
    return sorted(
        path
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in _SUFFIXES
    )


def describe_files(files: Sequence[Path], embedder: Embedder) -> NDArray[np.float32]:
    """Return the uncentred descriptors of ``files`` (float32 ``[N, 1280]``), as uploads get them.

    Files an upload would refuse are skipped (and named on stderr).
    """
    rows: list[NDArray[np.float32]] = []
    pending: list[NDArray[np.uint8]] = []

    def flush() -> None:
        if pending:
            rows.append(embedder.uncentred(np.stack(pending)))
            pending.clear()

    for path in files:
        try:
            pending.append(load_picture(path))
        except (MediaError, OSError) as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        if len(pending) == _BATCH:
            flush()
    flush()
    return np.concatenate(rows) if rows else np.empty((0, EMBEDDING_DIM), np.float32)


def fit_mean(files: Sequence[Path], embedder: Embedder) -> tuple[NDArray[np.float32], int]:
    """Return the mean uncentred descriptor of ``files`` and how many were used.

    Files an upload would refuse are skipped (and named on stderr).
    """
    rows = describe_files(files, embedder)
    if len(rows) == 0:
        raise ValueError("no pictures to fit the mean on")
    return rows.astype(np.float64).mean(axis=0).astype(np.float32), len(rows)


def fitting_command(
    prog: str, out_help: str, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, Embedder]:
    """Parse the command line shared by the fitting commands (``folders``, ``--out``,
    ``--cache-dir``) and load the embedder it names."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("folders", type=Path, nargs="+", help="folders of pictures")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache folder")
    args = parser.parse_args(argv)
    return args, Embedder(args.cache_dir or default_model_cache())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args, embedder = fitting_command("python -m backend.vision.fit_mean",
                                     "the mean file to write", argv)
    mean, count = fit_mean(picture_files(args.folders), embedder)
    header = [
        "Mean of the uncentred descriptors (two parts, each GeM, square root, L2) that",
        f"{MODEL_VERSION} gives {count} pictures of:",
        *(f"  {folder.as_posix()}" for folder in args.folders),
        "Made by python -m backend.vision.fit_mean; read by backend/vision/centring.py.",
    ]
    text = format_mean(mean, header)
    args.out.write_text(text, encoding="ascii")
    print(f"{args.out}: {count} pictures, SHA-256 {hashlib.sha256(text.encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
