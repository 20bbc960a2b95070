"""Provides the whitening of embeddings by a shipped linear map (pipeline revision 6).

A centred embedding (:mod:`backend.vision.centring`) still spends most of its length on a few
directions in which all pictures vary a lot (style, colour, drawing or photograph), so those
directions decide most cosines. Whitening rotates the embedding onto the principal axes of a
broad pool of pictures and scales each axis by ``(variance + shrink * mean variance) ** -power``:
the dominant axes are damped and the many quieter ones, where the differences between kinds of
things live, count for more. The ``shrink`` term keeps the quietest axes (mostly quantisation
noise) from being blown up: plain PCA whitening (``shrink = 0``, ``power = 0.5``) collapsed
precision on the development set (P@5 0.58 -> 0.08) when fitted on the few hundred pictures
searched.

Fitted once on 7,831 unlabelled drawings and emoji that the development set does not
contain (``python -m tests.support.vision_pool``, then ``python -m
backend.vision.fit_whitening``), it raised the development set's P@5 from 0.603 to 0.647
(``docs/vision-quality.md``). Like the mean, it is shipped rather than fitted per catalogue, so
a refit is a pipeline revision that reaches stored pictures through the background
re-embedding, never a silent change of every stored score.

The map lives in ``data/vision_whitening.npy``, pinned by :data:`WHITENING_SHA256`: a float16
``[1 + EMBEDDING_DIM, EMBEDDING_DIM]`` array whose first row is the pool's mean embedding and
whose other rows are the projection (principal axes already scaled). The output stays
``EMBEDDING_DIM`` wide, so both storage engines and the indexes are unchanged.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray
from pixmart_data import data_file
from threadpoolctl import ThreadpoolController

from backend.vision.shipped import read_pinned
from backend.vision.types import EMBEDDING_DIM

#: The shipped map, relative to the ``pixmart_data`` package.
WHITENING_FILE: Final = "vision_whitening.npy"
#: SHA-256 of the shipped map file.
WHITENING_SHA256: Final = "ab8138ca18ebf11f9e133c8f25623db3cbf4770f97c32f8555f43e4793f88483"
#: The exponent of each axis's variance in its scale: 0.5 whitens fully, 0 only rotates.
POWER: Final = 0.5
#: Added to every axis's variance before scaling, in multiples of the mean variance.
SHRINK: Final = 1.0


class WhiteningError(RuntimeError):
    """Raised when the shipped whitening map is missing, altered or malformed."""


class Whitening(NamedTuple):
    """A whitening map: subtract ``mean``, multiply by ``projection`` (float32)."""

    mean: NDArray[np.float32]
    projection: NDArray[np.float32]

    def apply(self, rows: NDArray[np.float32]) -> NDArray[np.float32]:
        """Return unit embeddings ``rows`` whitened and normalised again, float32 ``[N, dim]``.

        A row equal to the mean would become all zeros; it is left as it was instead (it
        cannot come out of the network in practice, and a zero vector cannot be indexed).
        """
        # One BLAS thread: the product takes about 1 ms that way. With OpenBLAS's threads it
        # took 7-16 ms, and their spinning after it slowed the network's next batch on a
        # 2-core machine (a batch of 32: 168 ms against 90).
        values = np.asarray(rows, np.float32)
        with _blas().limit(limits=1, user_api="blas"):
            whitened = (values - self.mean) @ self.projection
        norms = np.linalg.norm(whitened, axis=1, keepdims=True)
        flat = norms[:, 0] < 1e-6
        whitened[flat] = values[flat]
        norms[flat] = 1.0
        result: NDArray[np.float32] = (whitened / norms).astype(np.float32, copy=False)
        return result


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's thread pools (found once: it scans the loaded libraries)."""
    return ThreadpoolController()


def fit(rows: NDArray[np.floating], power: float = POWER, shrink: float = SHRINK) -> Whitening:
    """Fit a shrunk PCA whitening on embeddings ``rows`` ``[N, dim]`` (``N`` well above ``dim``).

    Raises:
        ValueError: Fewer rows than dimensions, or non-finite values.
    """
    data = np.asarray(rows, np.float64)
    if data.ndim != 2 or len(data) <= data.shape[1] or not np.isfinite(data).all():
        raise ValueError("need finite rows, more of them than dimensions")
    mean = data.mean(axis=0)
    variances, axes = np.linalg.eigh(np.cov((data - mean).T))
    variances = np.clip(variances, 0.0, None)
    scale = (variances + shrink * variances.mean()) ** -power
    return Whitening(mean.astype(np.float32), (axes * scale).astype(np.float32))


def to_bytes(whitening: Whitening) -> bytes:
    """Return the file content of ``whitening`` (see the module's docstring for the layout)."""
    buffer = io.BytesIO()
    np.save(buffer, np.vstack([whitening.mean, whitening.projection]).astype(np.float16),
            allow_pickle=False)
    return buffer.getvalue()


@functools.cache
def shipped_whitening(path: Path | None = None) -> Whitening:
    """Return the shipped whitening map (read once).

    Raises:
        WhiteningError: The file is missing, differs from :data:`WHITENING_SHA256` or is
            malformed.
    """
    source = path or data_file(WHITENING_FILE)
    content = read_pinned(source, WHITENING_SHA256, "whitening map", WhiteningError)
    try:
        stored = np.load(io.BytesIO(content), allow_pickle=False)
    except ValueError as exc:
        raise WhiteningError(f"the whitening map {source} is malformed: {exc}") from None
    if stored.shape != (EMBEDDING_DIM + 1, EMBEDDING_DIM) or not np.isfinite(stored).all():
        raise WhiteningError(f"the whitening map {source} has the wrong shape or values")
    values = stored.astype(np.float32)
    values.setflags(write=False)
    return Whitening(values[0], values[1:])


def whiten_rows(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return centred unit embeddings ``rows`` whitened by the shipped map, unit again."""
    return shipped_whitening().apply(rows)
