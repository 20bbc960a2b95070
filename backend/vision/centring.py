"""Provides the centring of image embeddings on a shipped mean embedding.

Every picture's GeM embedding has a large component shared by all pictures (what "a picture"
looks like to the network); cosine similarity between two embeddings is dominated by it, which
squeezes the differences that tell a dog from a cat. Subtracting the mean embedding of a broad
set of pictures and normalising again removes it: on the development set, P@5 0.571 -> 0.585.

Why a mean shipped with the model rather than one fitted on each shop's catalogue: measured on
the development set, a mean fitted on *other* classes of pictures gives nearly all of the gain of
a mean fitted on the very pictures searched (P@5 on held-out halves of the classes, 20 random
splits: 0.660 plain, 0.677 with the other classes' mean, 0.681 with their own; see
``docs/vision-quality.md``). A per-catalogue mean would change every stored embedding, score,
saved picture search and keyset cursor each time it is refitted; a shipped one is part of the
pipeline revision, so a new mean reaches stored pictures through the usual background
re-embedding.

The mean lives in ``data/vision_embedding_mean.txt`` (made by ``python -m
backend.vision.fit_mean``), pinned by :data:`MEAN_SHA256`: it shapes every embedding, so
whoever refits it must update the digest *and* bump the embedder's pipeline revision.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from pixmart_data import data_file

from backend.vision.types import EMBEDDING_DIM

#: The shipped mean, relative to the ``pixmart_data`` package.
MEAN_FILE: Final = "vision_embedding_mean.txt"
#: SHA-256 of the shipped mean file.
MEAN_SHA256: Final = "487e468fdfb88a0590b80175b117330cb73c986b09b855d157d03ccfc026f111"


class CentringError(RuntimeError):
    """Raised when the shipped mean embedding is missing, altered or malformed."""


@functools.cache
def embedding_mean(path: Path | None = None) -> NDArray[np.float32]:
    """Return the shipped mean of unit embeddings, float32 ``[EMBEDDING_DIM]`` (read once).

    Raises:
        CentringError: The file is missing, differs from :data:`MEAN_SHA256` or is malformed.
    """
    source = path or data_file(MEAN_FILE)
    try:
        content = source.read_bytes()
    except OSError as exc:
        raise CentringError(f"the mean embedding {source} cannot be read: {exc}") from None
    if hashlib.sha256(content).hexdigest() != MEAN_SHA256:
        raise CentringError(f"the mean embedding {source} is not the pinned one")
    values = np.array(
        [float(line) for line in content.decode("ascii").splitlines()
         if line.strip() and not line.startswith("#")],
        dtype=np.float32,
    )
    if values.shape != (EMBEDDING_DIM,) or not np.isfinite(values).all():
        raise CentringError(f"the mean embedding {source} has the wrong shape or values")
    values.setflags(write=False)
    return values


def centre_rows(
    unit_rows: NDArray[np.float32], mean: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """Return unit ``unit_rows`` minus the mean (the shipped one by default), normalised again.

    A row equal to the mean would become all zeros; it is left as it was instead (it cannot
    come out of the network in practice, and a zero vector cannot be indexed).
    """
    centre = embedding_mean() if mean is None else mean
    shifted = unit_rows - centre
    norms = np.linalg.norm(shifted, axis=1, keepdims=True)
    flat = norms[:, 0] < 1e-6
    shifted[flat] = unit_rows[flat]
    norms[flat] = np.linalg.norm(unit_rows[flat], axis=1, keepdims=True)
    result: NDArray[np.float32] = (shifted / np.maximum(norms, np.float32(1e-12))).astype(
        np.float32, copy=False
    )
    return result


def format_mean(mean: NDArray[np.float32], header: list[str]) -> str:
    """Return the file text of ``mean``: ``#`` header lines, then one value a line."""
    lines = [f"# {line}" for line in header]
    lines += [f"{value:.9g}" for value in np.asarray(mean, np.float32).tolist()]
    return "\n".join(lines) + "\n"
