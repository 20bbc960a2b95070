"""Provides :class:`IvfLists`: approximate nearest neighbours (faiss IVF), filtered by visibility.

The lists propose candidates; they never decide a ranking.
:class:`backend.vision.index.VectorIndex` scores what they propose exactly, from the float16
rows of the :class:`~backend.vision.exact_index.ExactIndex`, so hits carry the same scores (and
page with the same keyset cursors) as an exact search.

Storage: faiss ``IndexIVFScalarQuantizer``. :meth:`IvfLists.train` clusters a sample of the
catalogue into :func:`lists_for` lists (k-means centroids) and learns 8-bit per-dimension code
ranges; every row is then filed in the list of its nearest centroid as ``dim`` bytes of codes
plus its 64-bit slot number. A search compares the query with every centroid and scans only
the :attr:`~IvfLists.probes` nearest lists. Unlike a graph, adding a row is one centroid
comparison, so a million rows build in minutes instead of an hour; but the lists follow the
rows they were trained on, so the owner retrains when the catalogue has grown well past
:attr:`~IvfLists.trained_rows`.

Why 8-bit scalar codes: 4-bit product codes with faiss's SIMD fast scan (64 bytes a row) were
tried and measured by ``tests/bench/bench_vision.py``. They scan ten times faster (5.5 ms at
100,000 ungrouped rows with the real embeddings' spectrum, recall@24 0.989), but rank so
coarsely that 1,024 candidates re-ranked exactly found only 0.936 of the top 24 at a million
such rows, even with every list scanned; 8-bit codes reach 0.997 there (slower: 61 ms).

faiss numbers rows in the order they are added ("slots"). A deleted or re-embedded item leaves
a dead slot behind (taking rows out of the lists would scan them all): :attr:`dead_fraction`
tells the owner when to build fresh lists.

Visibility is applied inside the search: every search hands faiss a bitmap of the slots the
viewer may see (public and alive, plus the viewer's own private items, intersected with an
optional id prefilter), so the scan skips other viewers' private rows instead of returning
neighbours that are filtered away afterwards. The public part of that bitmap is kept packed
and up to date, so building it costs a copy of ``slots / 8`` bytes per search.

faiss is imported when the first lists are made: a small catalogue never loads it.

Thread safety: one lock serialises searches and changes (faiss does not allow both at once).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from backend.vision.exact_index import StoredRows

#: Training rows per list: faiss's k-means wants at least 39 and gains little past 64.
TRAINING_ROWS_PER_LIST: Final = 40
#: Lists per square root of the catalogue's rows (rounded to a power of two). Measured by
#: ``tests/bench/bench_vision.py`` and on Gaussian vectors with the real embeddings' spectrum:
#: twice as many lists (4 sqrt(n)) find slightly more per millisecond but take four times
#: longer to train (about 7 minutes at a million rows on the 2-core development machine).
LISTS_PER_SQRT_ROW: Final = 2
#: Lists probed unless the owner calibrates (:attr:`IvfLists.probes`).
DEFAULT_PROBES: Final = 16
#: Rows added per faiss call when many come at once (faiss spreads one call over all cores).
_ADD_CHUNK: Final = 16384


def lists_for(rows: int) -> int:
    """Return how many lists to train for a catalogue of ``rows`` rows (a power of two, >= 1).

    About ``2 * sqrt(rows)``, and never more than ``rows / 39`` (k-means needs 39 rows per
    centroid to place it well), so tiny catalogues get one list.
    """
    if rows < 1:
        raise ValueError("rows must be positive")
    wanted = LISTS_PER_SQRT_ROW * math.sqrt(rows)
    lists = 1 << max(0, round(math.log2(wanted)))
    while lists > 1 and lists * 39 > rows:
        lists //= 2
    return lists


class IvfLists:
    """Inverted lists over item vectors, searched among the items a viewer may see."""

    def __init__(self, dim: int, *, lists: int) -> None:
        """Create empty, untrained lists (:meth:`train` before :meth:`add`)."""
        # faiss's loader reports at INFO every CPU-specific build it looks for and does not
        # find (current wheels dispatch inside one library), which reads like an error.
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
        import faiss  # heavy, and only worth it for a large catalogue

        if dim < 1 or lists < 1:
            raise ValueError("dim and lists must be positive")
        # faiss is a SWIG module: its own type hints are partial, so it is used as Any here.
        self._faiss: Any = faiss
        self._dim = dim
        self._lists = lists
        self._quantizer: Any = faiss.IndexFlatIP(dim)  # the IVF index does not own it
        self._index: Any = faiss.IndexIVFScalarQuantizer(
            self._quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
        )
        self._lock = threading.Lock()
        self._trained_rows = 0
        #: Lists a search scans: more finds the true nearest more often, proportionally slower.
        self.probes = min(DEFAULT_PROBES, lists)
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
        """How many items the lists hold (alive slots)."""
        return len(self._slot_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slot_of

    @property
    def lists(self) -> int:
        """How many lists (centroids) the rows are filed in."""
        return self._lists

    @property
    def trained_rows(self) -> int:
        """The catalogue's size when the lists were trained (0 before :meth:`train`)."""
        return self._trained_rows

    @property
    def dead_fraction(self) -> float:
        """The share of slots whose item was deleted or re-added since (0 when empty)."""
        with self._lock:
            return 1.0 - len(self._slot_of) / self._slots if self._slots else 0.0

    @property
    def nbytes(self) -> int:
        """Approximate bytes held: centroids, codes with their slot numbers, slot metadata."""
        per_slot = self._dim + 8 + 8 + 8 + 1
        return self._lists * self._dim * 4 + self._slots * per_slot + self._public_bits.nbytes

    # ----------------------------------------------------------------------------- writing

    def train(self, sample: NDArray[np.floating[Any]], *, catalogue_rows: int) -> None:
        """Place the centroids and learn the code ranges from ``sample`` (catalogue rows).

        Args:
            sample: Unit vectors drawn across the catalogue, at least one per list; about
                :data:`TRAINING_ROWS_PER_LIST` per list is plenty.
            catalogue_rows: How many rows the catalogue holds now (see :attr:`trained_rows`).

        Raises:
            ValueError: Vectors of the wrong length, fewer than one per list, or trained twice.
        """
        vectors = np.ascontiguousarray(sample, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise ValueError(f"expected vectors of length {self._dim}, got {vectors.shape}")
        if len(vectors) < self._lists:
            raise ValueError(f"{self._lists} lists need at least as many training rows")
        with self._lock:
            if self._index.is_trained:
                raise ValueError("the lists are trained already")
            self._index.train(vectors)
            self._trained_rows = max(catalogue_rows, len(vectors))

    def add(self, rows: StoredRows) -> None:
        """Add rows; an item already in the lists is re-added (its old slot dies).

        Raises:
            ValueError: Vectors of the wrong length, or item ids that repeat within ``rows``.
            RuntimeError: The lists are not trained yet.
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
                raise RuntimeError("train the lists before adding rows")
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
        """Record an item's owner and public flag; ``KeyError`` if the lists lack it."""
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
        probes: int | None = None,
    ) -> NDArray[np.int64]:
        """Return up to ``count`` item ids near the unit ``query``, nearest first (approximately).

        Args:
            query: A unit vector of the lists' length.
            count: Most ids to return.
            viewer_id: Whose private items may be returned too; ``None``: public ones only.
            allowed_ids: If given, only these items are returned.
            probes: Lists to scan; :attr:`probes` if not given.
        """
        if count <= 0:
            return np.empty(0, np.int64)
        faiss = self._faiss
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self._dim)
        with self._lock:
            if not self._slot_of:
                return np.empty(0, np.int64)
            bitmap = self._bitmap(viewer_id, allowed_ids)
            params = faiss.SearchParametersIVF()
            # The selector reads ``bitmap`` through a raw pointer: both live until the end.
            params.sel = faiss.IDSelectorBitmap(self._slots, faiss.swig_ptr(bitmap))
            params.nprobe = max(1, min(self._lists, probes or self.probes))
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
