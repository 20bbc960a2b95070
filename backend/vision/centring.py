"""Provides the centring of image descriptors on a shipped mean descriptor.

Every picture's descriptor has a large component shared by all pictures (what "a picture"
looks like to the network); cosine similarity is dominated by it, which squeezes the
differences that tell a dog from a cat. Subtracting the mean descriptor of a broad set of
pictures removes it: on the development set, P@5 0.571 -> 0.585 (pipeline revision 4). Each part
of the descriptor (:data:`backend.vision.pooling.PARTS`) is centred on its own share of the
mean and normalised again before the parts are weighed into the embedding
(:func:`backend.vision.pooling.combine_parts`).

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
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from pixmart_data import data_file

from backend.vision.pooling import PARTS, combine_parts
from backend.vision.shipped import read_pinned
from backend.vision.types import EMBEDDING_DIM

#: The shipped mean, relative to the ``pixmart_data`` package.
MEAN_FILE: Final = "vision_embedding_mean.txt"
#: SHA-256 of the shipped mean file.
MEAN_SHA256: Final = "899b6368e38fc5184cb4247d020dce2f749871acb35a50a9ab36273a43343a87"


class CentringError(RuntimeError):
    """Raised when the shipped mean embedding is missing, altered or malformed."""


@functools.cache
def embedding_mean(path: Path | None = None) -> NDArray[np.float32]:
    """Return the shipped mean descriptor, float32 ``[EMBEDDING_DIM]`` (read once).

    Raises:
        CentringError: The file is missing, differs from :data:`MEAN_SHA256` or is malformed.
    """
    source = path or data_file(MEAN_FILE)
    content = read_pinned(source, MEAN_SHA256, "mean embedding", CentringError)
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
    rows: NDArray[np.float32], mean: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """Return the unit embeddings of descriptors ``rows`` (:func:`~backend.vision.pooling.describe`)
    centred on ``mean`` (the shipped one by default).

    Each part minus its share of the mean is normalised, then the parts are weighed together.
    A part equal to its mean would become all zeros; it is left as it was instead (it cannot
    come out of the network in practice, and a zero vector cannot be indexed).
    """
    centre = embedding_mean() if mean is None else mean
    shifted = rows - centre
    for span, _ in PARTS:
        flat = np.linalg.norm(shifted[:, span], axis=1) < 1e-6
        shifted[flat, span] = rows[flat, span]
    return combine_parts(shifted)


def format_mean(mean: NDArray[np.float32], header: list[str]) -> str:
    """Return the file text of ``mean``: ``#`` header lines, then one value a line."""
    lines = [f"# {line}" for line in header]
    lines += [f"{value:.9g}" for value in np.asarray(mean, np.float32).tolist()]
    return "\n".join(lines) + "\n"
