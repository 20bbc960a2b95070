"""Provides :class:`ReducedGraph`: approximate nearest neighbours (faiss HNSW on PCA-reduced
vectors), filtered by visibility.

The graph proposes candidates; it never decides a ranking. :class:`backend.vision.index.VectorIndex`
scores what it proposes exactly, from the float16 rows of the
:class:`~backend.vision.exact_index.ExactIndex`, so hits carry the same scores (and page with
the same keyset cursors) as an exact search.

Storage: :meth:`ReducedGraph.train` learns a principal-component projection from a sample of
the catalogue (its mean and the :data:`REDUCED_DIM` directions of largest variance; the
embeddings' spectrum decays fast, and 128 of 1280 directions keep about 83% of the variance of
the real ones); every row is then stored as those coordinates in a faiss ``IndexHNSWFlat``
graph. A query is projected the same way; since ``q . x = q . mean + (P q) . (P (x - mean))``
plus what the projection drops, the nearest rows in the reduced space are the candidates, and
the exact re-rank repairs their order. The graph is an L2 graph: each row carries one extra
coordinate ``sqrt(R**2 - |P (x - mean)|**2)`` (``R = 1 + |mean|`` bounds every unit row's
reduced norm) and queries a zero there, which makes the L2 order the inner-product order.

Why this and not inverted lists (:mod:`backend.vision` used faiss IVF with 8-bit codes before):
on pictures without tight groups (Gaussian vectors with the real embeddings' spectrum), a row's
true neighbours are spread over many lists, and the lists had to scan a quarter of a million
rows' codes to find 0.98 of the top 24 (61 ms at a million rows). A graph walks towards the
query wherever its neighbours lie, and at 128 dimensions its distances are ten times cheaper
than at 1280, so a million rows build in minutes (the 1280-d graph before the lists took an
hour) and a search visits a few thousand rows. Measured by ``tests/bench/bench_vision.py``.

faiss numbers rows in the order they are added and a graph keeps every row: deleted or
re-embedded items leave dead slots (:class:`~backend.vision.slots.SlotTable`), and
:attr:`ReducedGraph.dead_fraction` tells the owner when to build afresh. The projection follows
the rows it was learnt from, so the owner also rebuilds when the catalogue has grown well past
:attr:`ReducedGraph.trained_rows`. Visibility is applied inside the search as a bitmap of
slots (see :mod:`backend.vision.slots`).

faiss is imported when the first graph is made: a small catalogue never loads it.

Thread safety: one lock serialises searches and changes (faiss does not allow both at once).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from backend.vision.exact_index import StoredRows
from backend.vision.slots import SlotTable

#: Coordinates kept per row (fewer if the vectors are shorter). Measured on Gaussian vectors
#: with the real embeddings' spectrum: an exact scan of 128 coordinates finds all of the true
#: top 24 among its 200 best (64: 0.98; 192 and 256 no better, and slower to walk).
REDUCED_DIM: Final = 128
#: Rows the projection is learnt from (a covariance of ``dim**2`` values: quick at 20,000).
TRAINING_ROWS: Final = 20_000
#: Neighbours per row in the graph (faiss's ``M``; the bottom layer keeps twice as many).
NEIGHBOURS: Final = 32
#: Candidates kept while a row is linked in (faiss's ``efConstruction``): 128 found 0.99 of
#: the top 24 where 64 found 0.96, at 100,000 rows, for twice the build time.
BUILD_BREADTH: Final = 128
#: Candidates kept while a search walks (faiss's ``efSearch``) unless the owner calibrates.
DEFAULT_BREADTH: Final = 256
#: Candidates proposed per hit wanted unless the owner calibrates: an exact scan of 128
#: coordinates of ungrouped pictures finds all of the true top 24 among its best 200.
DEFAULT_CANDIDATES_PER_HIT: Final = 8
#: Rows added per faiss call when many come at once (faiss spreads one call over all cores).
_ADD_CHUNK: Final = 16384


class ReducedGraph:
    """An HNSW graph over PCA-reduced item vectors, searched among the items a viewer may see."""

    def __init__(self, dim: int, *, reduced_dim: int = REDUCED_DIM) -> None:
        """Create an empty, untrained graph (:meth:`train` before :meth:`add`)."""
        # faiss's loader reports at INFO every CPU-specific build it looks for and does not
        # find (current wheels dispatch inside one library), which reads like an error.
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
        import faiss  # heavy, and only worth it for a large catalogue

        if dim < 1 or reduced_dim < 1:
            raise ValueError("dim and reduced_dim must be positive")
        # faiss is a SWIG module: its own type hints are partial, so it is used as Any here.
        self._faiss: Any = faiss
        self._dim = dim
        self._reduced = min(reduced_dim, dim)
        # The extra coordinate turns inner products into L2 distances (module docstring).
        self._index: Any = faiss.IndexHNSWFlat(self._reduced + 1, NEIGHBOURS, faiss.METRIC_L2)
        self._index.hnsw.efConstruction = BUILD_BREADTH
        self._mean = np.zeros(dim, np.float32)
        self._projection = np.zeros((dim, self._reduced), np.float32)
        self._radius = 1.0
        self._trained = False
        self._lock = threading.Lock()
        self._trained_rows = 0
        #: Candidates a search keeps while walking: more finds the true nearest more often,
        #: proportionally slower.
        self.breadth = DEFAULT_BREADTH
        #: Candidates a search asks for per hit wanted (each is scored exactly afterwards).
        self.candidates_per_hit = DEFAULT_CANDIDATES_PER_HIT
        self._slots = SlotTable()

    # ----------------------------------------------------------------------------- reading

    def __len__(self) -> int:
        """How many items the graph holds (alive slots)."""
        return len(self._slots)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slots

    @property
    def reduced_dim(self) -> int:
        """Coordinates kept per row."""
        return self._reduced

    @property
    def trained_rows(self) -> int:
        """The catalogue's size when the projection was learnt (0 before :meth:`train`)."""
        return self._trained_rows

    @property
    def dead_fraction(self) -> float:
        """The share of slots whose item was deleted or re-added since (0 when empty)."""
        with self._lock:
            return self._slots.dead_fraction

    @property
    def nbytes(self) -> int:
        """Approximate bytes held: projection, reduced rows, links, slot metadata."""
        slots = self._slots.slots
        # Reduced row, links of the bottom layer (twice NEIGHBOURS) and, on average, a few
        # of the upper layers (a row reaches layer l with probability NEIGHBOURS**-l), offset
        # and level.
        per_row = (self._reduced + 1) * 4 + (2 * NEIGHBOURS + 2) * 4 + 12
        return (
            self._projection.nbytes + self._mean.nbytes + slots * per_row + self._slots.nbytes
        )

    # ----------------------------------------------------------------------------- writing

    def train(self, sample: NDArray[np.floating[Any]], *, catalogue_rows: int) -> None:
        """Learn the projection from ``sample`` (unit vectors drawn across the catalogue).

        Args:
            sample: At least two rows; :data:`TRAINING_ROWS` is plenty.
            catalogue_rows: How many rows the catalogue holds now (see :attr:`trained_rows`).

        Raises:
            ValueError: Vectors of the wrong length, fewer than two, or trained twice.
        """
        vectors = np.asarray(sample, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise ValueError(f"expected vectors of length {self._dim}, got {vectors.shape}")
        if len(vectors) < 2:
            raise ValueError("the projection needs at least two training rows")
        mean = vectors.mean(axis=0)
        covariance = np.cov(vectors - mean, rowvar=False)
        values, directions = np.linalg.eigh(covariance)  # ascending eigenvalues
        kept = directions[:, np.argsort(values)[::-1][: self._reduced]]
        with self._lock:
            if self._trained:
                raise ValueError("the graph is trained already")
            self._mean = mean.astype(np.float32)
            self._projection = np.ascontiguousarray(kept, dtype=np.float32)
            # |P (x - mean)| <= |x - mean| <= 1 + |mean| for unit x: the extra coordinate of
            # every row is real.
            self._radius = 1.0 + float(np.linalg.norm(mean))
            self._trained = True
            self._trained_rows = max(catalogue_rows, len(vectors))

    def add(self, rows: StoredRows) -> None:
        """Add rows; an item already in the graph is re-added (its old slot dies).

        Raises:
            ValueError: Vectors of the wrong length, or item ids that repeat within ``rows``.
            RuntimeError: The graph is not trained yet.
        """
        vectors = np.asarray(rows.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise ValueError(f"expected vectors of length {self._dim}, got {vectors.shape}")
        if len(np.unique(rows.item_ids)) != len(rows.item_ids):
            raise ValueError("item ids repeat")
        if len(vectors) == 0:
            return
        with self._lock:
            if not self._trained:
                raise RuntimeError("train the graph before adding rows")
            for start in range(0, len(vectors), _ADD_CHUNK):
                self._index.add(self._reduce(vectors[start : start + _ADD_CHUNK]))
            self._slots.append(rows)

    def set_visibility(self, item_id: int, *, owner_id: int, public: bool) -> None:
        """Record an item's owner and public flag; ``KeyError`` if the graph lacks it."""
        with self._lock:
            self._slots.set_visibility(item_id, owner_id=owner_id, public=public)

    def remove(self, item_id: int) -> bool:
        """Take an item out of every search (its slot dies); return whether it was there."""
        with self._lock:
            return self._slots.kill(item_id)

    def _reduce(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """The graph's rows for unit ``vectors``: reduced coordinates plus the extra one."""
        reduced = (vectors - self._mean) @ self._projection
        squared = np.einsum("ij,ij->i", reduced, reduced)
        extra = np.sqrt(np.maximum(self._radius**2 - squared, 0.0))
        return np.ascontiguousarray(np.hstack([reduced, extra[:, None]]), dtype=np.float32)

    # ----------------------------------------------------------------------------- searching

    def search(
        self,
        query: NDArray[np.float32],
        count: int,
        *,
        viewer_id: int | None,
        allowed_ids: NDArray[np.int64] | None = None,
        breadth: int | None = None,
    ) -> NDArray[np.int64]:
        """Return up to ``count`` item ids near the unit ``query``, nearest first (approximately).

        Args:
            query: A unit vector of the graph's full length.
            count: Most ids to return.
            viewer_id: Whose private items may be returned too; ``None``: public ones only.
            allowed_ids: If given, only these items are returned.
            breadth: Candidates kept while walking (at least ``count``); :attr:`breadth` if not
                given.
        """
        if count <= 0:
            return np.empty(0, np.int64)
        faiss = self._faiss
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(self._dim)
        reduced = np.zeros((1, self._reduced + 1), np.float32)  # the extra coordinate: 0
        # The mean shifts every score by the same q . mean: only P q matters for the order.
        reduced[0, : self._reduced] = vector @ self._projection
        with self._lock:
            if not len(self._slots):
                return np.empty(0, np.int64)
            bitmap = self._slots.bitmap(viewer_id, allowed_ids)
            params = faiss.SearchParametersHNSW()
            # The selector reads ``bitmap`` through a raw pointer: both live until the end.
            params.sel = faiss.IDSelectorBitmap(self._slots.slots, faiss.swig_ptr(bitmap))
            params.efSearch = max(count, breadth or self.breadth)
            _, slots = self._index.search(reduced, count, params=params)
            return self._slots.items(slots[0])

