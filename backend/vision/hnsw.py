"""Provides :class:`HnswGraph`: approximate nearest neighbours (faiss HNSW), filtered by visibility.

The graph proposes candidates; it never decides a ranking.
:class:`backend.vision.index.VectorIndex` scores what it proposes exactly, from the float16
rows of the :class:`~backend.vision.exact_index.ExactIndex`, so hits carry the same scores (and
page with the same keyset cursors) as an exact search.

Storage: faiss ``IndexHNSWSQ`` with 8-bit scalar quantisation (per-dimension ranges learned from
the first rows added), so a row costs ``dim`` bytes of codes plus its links (``2 * m`` 32-bit
neighbours on the base layer). faiss numbers rows in the order they are added ("slots") and
cannot take a row out of an HNSW graph, so a deleted or re-embedded item leaves a dead slot
behind: :attr:`dead_fraction` tells the owner when to build a fresh graph.

Visibility is applied inside the search: every search hands faiss a bitmap of the slots the
viewer may see (public and alive, plus the viewer's own private items, intersected with an
optional id prefilter), so the graph walk keeps looking until it has found visible rows instead
of returning neighbours that are filtered away afterwards. The public part of that bitmap is
kept packed and up to date, so building it costs a copy of ``slots / 8`` bytes per search.

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

#: Links per node (twice that on the base layer). With ``DEFAULT_EF_CONSTRUCTION`` it gives
#: recall@24 0.997 at 100,000 rows but 0.82 at a million (``tests/bench/bench_vision.py``).
DEFAULT_M: Final = 32
#: Breadth of the search that inserts a row: more builds a better graph, proportionally slower.
DEFAULT_EF_CONSTRUCTION: Final = 48
#: Rows added per faiss call when many come at once (faiss spreads one call over all cores).
_ADD_CHUNK: Final = 16384


class HnswGraph:
    """An HNSW graph over item vectors, searched among the items a viewer may see."""

    def __init__(
        self, dim: int, *, m: int = DEFAULT_M, ef_construction: int = DEFAULT_EF_CONSTRUCTION
    ) -> None:
        """Create an empty graph (untrained: the first :meth:`add` learns the code ranges)."""
        # faiss's loader reports at INFO every CPU-specific build it looks for and does not
        # find (current wheels dispatch inside one library), which reads like an error.
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
        import faiss  # heavy, and only worth it for a large catalogue

        if dim < 1 or m < 2 or ef_construction < 1:
            raise ValueError("dim must be positive, m at least 2, ef_construction positive")
        # faiss is a SWIG module: its own type hints are partial, so it is used as Any here.
        self._faiss: Any = faiss
        self._dim = dim
        self._m = m
        self._index: Any = self._faiss.IndexHNSWSQ(
            dim, self._faiss.ScalarQuantizer.QT_8bit, m, self._faiss.METRIC_INNER_PRODUCT
        )
        self._index.hnsw.efConstruction = ef_construction
        self._lock = threading.Lock()
        self._slots = 0
        self._item = np.empty(0, np.int64)
        self._owner = np.empty(0, np.int64)
        self._alive = np.empty(0, np.bool_)
        #: Bit ``s`` (little-endian bit order, as faiss reads it) set: slot ``s`` is alive and
        #: public.
        self._public_bits = np.empty(0, np.uint8)
        self._slot_of: dict[int, int] = {}
        #: The alive private slots of each owner: OR-ed into the bitmap of that owner's searches.
        self._private_of: dict[int, set[int]] = {}

    # ----------------------------------------------------------------------------- reading

    def __len__(self) -> int:
        """How many items the graph holds (alive slots)."""
        return len(self._slot_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slot_of

    @property
    def dead_fraction(self) -> float:
        """The share of slots whose item was deleted or re-added since (0 for an empty graph)."""
        with self._lock:
            return 1.0 - len(self._slot_of) / self._slots if self._slots else 0.0

    @property
    def nbytes(self) -> int:
        """Approximate bytes held: codes, base-layer links, upper layers and slot metadata."""
        per_slot = self._dim + 2 * self._m * 4 + 8 + 8 + 1
        # A node reaches the upper layers with probability 1/m; each holds m links there.
        upper = self._slots * 4 * self._m // max(1, self._m - 1)
        return self._slots * per_slot + upper + self._public_bits.nbytes

    # ----------------------------------------------------------------------------- writing

    def add(self, rows: StoredRows) -> None:
        """Add rows; an item already in the graph is re-added (its old slot dies).

        The first call also learns the 8-bit code ranges from its rows, so give it a
        representative set (the catalogue's rows, not one new picture).

        Raises:
            ValueError: Vectors of the wrong length, or item ids that repeat within ``rows``.
        """
        vectors = np.ascontiguousarray(rows.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise ValueError(f"expected vectors of length {self._dim}, got {vectors.shape}")
        if len(np.unique(rows.item_ids)) != len(rows.item_ids):
            raise ValueError("item ids repeat")
        if len(vectors) == 0:
            return
        with self._lock:
            if not self._index.is_trained:
                self._index.train(vectors)
            for item_id in rows.item_ids.tolist():
                self._kill(item_id)
            first = self._slots
            self._reserve(first + len(vectors))
            for start in range(0, len(vectors), _ADD_CHUNK):
                self._index.add(vectors[start : start + _ADD_CHUNK])
            self._slots = first + len(vectors)
            stop = self._slots
            self._item[first:stop] = rows.item_ids
            self._owner[first:stop] = rows.owner_ids
            self._alive[first:stop] = True
            for offset, (item_id, owner_id, public) in enumerate(
                zip(rows.item_ids.tolist(), rows.owner_ids.tolist(), rows.public.tolist(),
                    strict=True)
            ):
                slot = first + offset
                self._slot_of[item_id] = slot
                self._set_visibility(slot, owner_id, public)

    def set_visibility(self, item_id: int, *, owner_id: int, public: bool) -> None:
        """Record an item's owner and public flag; ``KeyError`` if the graph lacks it."""
        with self._lock:
            slot = self._slot_of[item_id]
            self._forget_private(slot)
            self._owner[slot] = owner_id
            self._set_visibility(slot, owner_id, public)

    def remove(self, item_id: int) -> bool:
        """Take an item out of every search (its slot dies); return whether it was there."""
        with self._lock:
            return self._kill(item_id)

    def _kill(self, item_id: int) -> bool:
        slot = self._slot_of.pop(item_id, None)
        if slot is None:
            return False
        self._alive[slot] = False
        self._forget_private(slot)
        self._public_bits[slot >> 3] &= np.uint8(0xFF ^ (1 << (slot & 7)))
        return True

    def _set_visibility(self, slot: int, owner_id: int, public: bool) -> None:
        mask = np.uint8(1 << (slot & 7))
        if public:
            self._public_bits[slot >> 3] |= mask
        else:
            self._public_bits[slot >> 3] &= ~mask
            self._private_of.setdefault(owner_id, set()).add(slot)

    def _forget_private(self, slot: int) -> None:
        owner = int(self._owner[slot])
        private = self._private_of.get(owner)
        if private is not None:
            private.discard(slot)
            if not private:
                del self._private_of[owner]

    def _reserve(self, slots: int) -> None:
        if len(self._item) >= slots:
            return
        capacity = max(slots, 2 * len(self._item), 1024)
        self._item = _grown(self._item, capacity)
        self._owner = _grown(self._owner, capacity)
        self._alive = _grown(self._alive, capacity)
        self._public_bits = _grown(self._public_bits, -(-capacity // 8))

    # ----------------------------------------------------------------------------- searching

    def search(
        self,
        query: NDArray[np.float32],
        count: int,
        *,
        viewer_id: int | None,
        allowed_ids: NDArray[np.int64] | None = None,
        ef_search: int,
    ) -> NDArray[np.int64]:
        """Return up to ``count`` item ids near the unit ``query``, nearest first (approximately).

        Args:
            query: A unit vector of the graph's length.
            count: Most ids to return.
            viewer_id: Whose private items may be returned too; ``None``: public ones only.
            allowed_ids: If given, only these items are returned.
            ef_search: Breadth of the graph walk (at least ``count``): larger finds the true
                nearest more often, proportionally slower.
        """
        if count <= 0:
            return np.empty(0, np.int64)
        faiss = self._faiss
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self._dim)
        with self._lock:
            if not self._slot_of:
                return np.empty(0, np.int64)
            bitmap = self._bitmap(viewer_id, allowed_ids)
            selector = faiss.IDSelectorBitmap(self._slots, faiss.swig_ptr(bitmap))
            params = faiss.SearchParametersHNSW()
            params.sel = selector
            params.efSearch = max(ef_search, count)
            _, slots = self._index.search(vector, count, params=params)
            found: NDArray[np.int64] = self._item[slots[0][slots[0] >= 0]]
            return found

    def _bitmap(
        self, viewer_id: int | None, allowed_ids: NDArray[np.int64] | None
    ) -> NDArray[np.uint8]:
        """The packed bitmap of the slots this search may return (see the module's docstring)."""
        size = -(-self._slots // 8)
        bitmap = self._public_bits[:size].copy()
        private = self._private_of.get(viewer_id) if viewer_id is not None else None
        if private:
            slots = np.fromiter(private, np.int64, len(private))
            np.bitwise_or.at(bitmap, slots >> 3, (1 << (slots & 7)).astype(np.uint8))
        if allowed_ids is not None:
            chosen = self._alive[: self._slots] & np.isin(self._item[: self._slots], allowed_ids)
            bitmap &= np.packbits(chosen, bitorder="little")
        return bitmap


def _grown(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    grown = np.zeros(capacity, array.dtype)
    grown[: len(array)] = array
    return grown
