"""Provides the exact in-memory vector index: top-k cosine search with visibility filtering.

Rows are L2-normalised embeddings stored as float16 (the values scores are computed from), each
with an item id, an owner id and a public flag. A search only ranks rows the viewer may see
(public, or owned by the viewer) and that pass an optional id prefilter, so filtering never
removes results after the fact. Results are ordered by score descending, then item id
ascending, and a keyset cursor ``after=(score, item_id)`` pages through them deterministically.

Why two passes: a float16 scan of 1M x 1280 reads 2.56 GB per query, which alone takes ~90 ms at
this machine's memory bandwidth. So each row also keeps an 8-bit code (per-row affine
quantisation) plus a bound on its quantisation error. The coarse pass scans the codes (1.28 GB,
in numpy), giving for every row an interval ``[lb, ub]`` that provably
contains its exact score; only rows whose ``ub`` reaches the k-th best ``lb`` can be in the
top k, and just those (typically a few hundred) are scored exactly from float16. The ranking is
that of a brute-force scan over the float16 rows (``tests/unit/test_vision_index.py`` checks it);
scores are exact integer dot products of the float16 row with the query rounded to multiples of
2**-20, i.e. within 2e-5 of the float64 cosine.

Thread safety: one :class:`threading.Lock` serialises mutations and searches. Searches are
meant to run in a worker thread and mutations on the event loop; a mutation holds the lock for
microseconds but may wait for a running search (up to one search's duration).

This index is the reference the approximate one (:mod:`backend.vision.ivf`) is measured
against, and what :class:`backend.vision.index.VectorIndex` ranks with below the size where the
approximate search pays off: the coarse pass reads every code per query, so its cost grows with
the catalogue.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_DIM: Final = 1280
DEFAULT_BLOCK_ROWS: Final = 16384
# Up to this many rows everything is scored exactly (~3 ms) without a coarse pass.
DEFAULT_EXACT_LIMIT: Final = 1024
# Exact scoring costs ~64x the coarse pass per row; gather-and-score smaller prefilters directly.
_EXACT_COST_RATIO: Final = 64
# Covers float32 rounding outside the dot product itself (products with mid/step, S, q32 vs q64).
_ABS_SLACK: Final = 3e-5
# Exact scores are integer dot products: float16 values are multiples of 2**-24, and the query
# is rounded to multiples of 2**-20. Integer sums do not depend on summation order, so a row's
# score is bit-identical in every search (keyset paging relies on it), and with unit rows
# |sum| < 2**44, far from int64 overflow.
_VALUE_BITS: Final = 24
_QUERY_BITS: Final = 20
# Unit roundoff of float32.
_F32_EPS: Final = 2.0**-24
# Exact scores are computed in chunks to bound the int64 scratch memory.
_EXACT_CHUNK: Final = 2048
# Sample size used to find a safe lower bound for the k-th best score without a full partition.
_SAMPLE_ROWS: Final = 16384
_ENCODE_CHUNK: Final = 4096
# Rows of codes cast to float32 at a time by the coarse pass (5 MB: stays in cache).
_COARSE_CHUNK: Final = 1024

# float16 bit pattern -> value * 2**24 as an integer (exact for every finite float16); a table
# gather is as fast as numpy's float16 cast. Non-finite patterns never get stored.
_F16_VALUES: Final = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)
_F16_TO_FIXED: Final = (
    np.where(np.isfinite(_F16_VALUES), _F16_VALUES, 0.0) * 2.0**_VALUE_BITS
).astype(np.int64)


class Cursor(NamedTuple):
    """Keyset position of the last hit of a page: pass it as ``after`` for the next page."""

    score: float
    item_id: int


class Hit(NamedTuple):
    """One search result."""

    item_id: int
    score: float

    def cursor(self) -> Cursor:
        """Return the keyset cursor for the page that follows this hit."""
        return Cursor(self.score, self.item_id)


class StoredRows(NamedTuple):
    """Some stored rows: item ids with their vectors (float16 values, as float32) and visibility."""

    item_ids: NDArray[np.int64]
    vectors: NDArray[np.float32]
    owner_ids: NDArray[np.int64]
    public: NDArray[np.bool_]


@dataclass(eq=False, slots=True)
class _Block:
    """A fixed number of rows: float16 vectors, int8 codes and the codes' affine parameters.

    A row's value is approximated by ``mid + step * code``; ``error`` is an upper bound on the
    L2 distance between that approximation and the float16 vector.
    """

    vectors: NDArray[np.float16]
    codes: NDArray[np.int8]
    mids: NDArray[np.float32]
    steps: NDArray[np.float32]
    errors: NDArray[np.float32]

    @classmethod
    def allocate(cls, rows: int, dim: int) -> _Block:
        # Large np.zeros come from calloc: untouched pages cost no memory until rows are written.
        return cls(
            vectors=np.zeros((rows, dim), np.float16),
            codes=np.zeros((rows, dim), np.int8),
            mids=np.zeros(rows, np.float32),
            steps=np.zeros(rows, np.float32),
            errors=np.zeros(rows, np.float32),
        )


@dataclass(frozen=True, slots=True)
class _Encoded:
    """Rows ready to store: float16 vectors and their int8 codes with bounds."""

    vectors: NDArray[np.float16]
    codes: NDArray[np.int8]
    mids: NDArray[np.float32]
    steps: NDArray[np.float32]
    errors: NDArray[np.float32]


def _encode(unit_rows: NDArray[np.float32]) -> _Encoded:
    """Quantise L2-normalised rows to float16 (stored) and int8 codes (coarse pass)."""
    vectors = unit_rows.astype(np.float16)
    values = vectors.astype(np.float32)  # exact
    low = values.min(axis=1)
    high = values.max(axis=1)
    # A constant row gets a tiny step so its codes are all -128 and the division stays finite.
    steps = np.maximum(high - low, np.float32(1e-12)) / np.float32(255.0)
    mids = low + np.float32(128.0) * steps
    # In-place arithmetic: encoding dominates bulk loads, and it is memory-bound.
    codes = values - mids[:, None]
    codes /= steps[:, None]
    np.rint(codes, out=codes)
    np.clip(codes, -128, 127, out=codes)
    residual = codes * steps[:, None]
    residual += mids[:, None]
    np.subtract(values, residual, out=residual)
    errors = np.sqrt(np.einsum("ij,ij->i", residual, residual, dtype=np.float64))
    # The residual was evaluated in float32: each element is off by at most ~3 * 2**-24 (all
    # terms are <= 1), so widen by sqrt(dim) * 4e-7, plus a relative margin for the sum.
    margin = float(np.sqrt(values.shape[1])) * 4e-7
    bound = (errors * (1.0 + 1e-4) + margin).astype(np.float32)
    return _Encoded(vectors, codes.astype(np.int8), mids, steps, bound)


def _as_unit_rows(vectors: ArrayLike, dim: int) -> NDArray[np.float32]:
    """Return ``vectors`` as float32 [N, dim] rows of unit norm, or raise ``ValueError``."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of length {dim}, got shape {array.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", array, array, dtype=np.float64))
    # A NaN or inf anywhere makes the row's norm non-finite: one cheap check for both.
    if not np.isfinite(norms).all():
        raise ValueError("vectors must be finite")
    if (norms == 0).any():
        raise ValueError("cannot index a zero vector")
    result: NDArray[np.float32] = array / norms.astype(np.float32)[:, None]
    return result


def as_unit_query(query: ArrayLike, dim: int) -> NDArray[np.float64]:
    """Return ``query`` as a float64 unit vector of length ``dim``, or raise ``ValueError``."""
    array = np.asarray(query, dtype=np.float64).reshape(-1)
    if array.shape != (dim,):
        raise ValueError(f"expected a query of length {dim}, got shape {array.shape}")
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("query must be finite and non-zero")
    result: NDArray[np.float64] = array / norm
    return result


def _coarse_bounds(
    blocks: Sequence[_Block],
    count: int,
    query: NDArray[np.float32],
    round_k: float,
    slack: float,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return, for each of the first ``count`` rows, an interval ``(lb, ub)`` holding its score.

    A row's interval is ``mid * sum(q) + step * (codes . q) -/+ width`` with
    ``width = error + step * round_k + slack``; the codes are cast to float32 a cache-sized
    chunk at a time, so the pass streams them once (the cast is most of its cost).
    """
    sum_q = np.float32(query.astype(np.float64).sum())
    lower = np.empty(count, np.float32)
    upper = np.empty(count, np.float32)
    size = len(blocks[0].mids) if blocks else 0
    for number, block in enumerate(blocks):
        start = number * size
        rows = min(size, count - start)
        if rows <= 0:
            break
        raw = np.empty(rows, np.float32)
        for first in range(0, rows, _COARSE_CHUNK):
            last = min(rows, first + _COARSE_CHUNK)
            # einsum, not ``@``: a BLAS gemv this small spends its time waking threads, and
            # on a busy 2-core machine it took 15 ms a chunk instead of 1.
            chunk = block.codes[first:last].astype(np.float32)
            raw[first:last] = np.einsum("ij,j->i", chunk, query)
        approx = block.mids[:rows] * sum_q + block.steps[:rows] * raw
        width = block.errors[:rows] + block.steps[:rows] * np.float32(round_k)
        width += np.float32(slack)
        lower[start : start + rows] = approx - width
        upper[start : start + rows] = approx + width
    return lower, upper


class ExactIndex:
    """Exact cosine top-k over float16 rows, with owner/public visibility and id prefilters."""

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        *,
        block_rows: int = DEFAULT_BLOCK_ROWS,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
    ) -> None:
        """Create an empty index.

        Args:
            dim: Vector length.
            block_rows: Rows per storage block (growth unit; the coarse pass scans whole blocks).
            exact_limit: Up to this many candidate rows are scored exactly without a coarse pass.
        """
        if dim < 1 or block_rows < 1 or exact_limit < 0:
            raise ValueError("dim and block_rows must be positive, exact_limit non-negative")
        self._dim = dim
        self._block_rows = block_rows
        self._exact_limit = exact_limit
        self._lock = threading.Lock()
        self._count = 0
        self._blocks: list[_Block] = []
        self._ids = np.empty(0, np.int64)
        self._owners = np.empty(0, np.int64)
        self._public = np.empty(0, np.bool_)
        self._row_of: dict[int, int] = {}

    # ----------------------------------------------------------------------------- reading

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._dim

    def __len__(self) -> int:
        return self._count

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row_of

    def item_ids(self) -> NDArray[np.int64]:
        """Return a copy of the stored item ids (in storage order)."""
        with self._lock:
            return self._ids[: self._count].copy()

    def count_visible(self, viewer_id: int | None = None) -> int:
        """Return how many rows the viewer may see (as :meth:`search` takes ``viewer_id``)."""
        with self._lock:
            return int(np.count_nonzero(self._visible_mask(self._count, viewer_id)))

    def vector(self, item_id: int) -> NDArray[np.float32]:
        """Return the stored unit vector (float16) of ``item_id``; ``KeyError`` if absent."""
        with self._lock:
            row = self._row_of[item_id]
            block, offset = divmod(row, self._block_rows)
            stored: NDArray[np.float32] = self._blocks[block].vectors[offset].astype(np.float32)
            return stored

    def rows(self, item_ids: Iterable[int] | NDArray[np.integer]) -> StoredRows:
        """Return the stored rows of those of ``item_ids`` that are present, in storage order."""
        ids = _id_array(item_ids)
        with self._lock:
            rows = self._rows_of(ids)
            vectors = np.empty((len(rows), self._dim), np.float32)
            blocks, offsets = np.divmod(rows, self._block_rows)
            for number in np.unique(blocks).tolist():
                chosen = blocks == number
                vectors[chosen] = self._blocks[number].vectors[offsets[chosen]]
            # Fancy indexing copies: the rows stay valid whatever the index does next.
            return StoredRows(self._ids[rows], vectors, self._owners[rows], self._public[rows])

    @property
    def nbytes(self) -> int:
        """Bytes allocated for rows (vectors, codes and metadata)."""
        per_block = self._block_rows * (self._dim * 3 + 12)
        return len(self._blocks) * per_block + self._ids.nbytes * 2 + self._public.nbytes

    # ----------------------------------------------------------------------------- writing

    def add(self, item_id: int, vector: ArrayLike, *, owner_id: int, public: bool) -> None:
        """Add one row; ``ValueError`` if the id is present or the vector is unusable."""
        self.add_many([item_id], vector, [owner_id], [public])

    def add_many(
        self,
        item_ids: Iterable[int] | NDArray[np.integer],
        vectors: ArrayLike,
        owner_ids: Iterable[int] | NDArray[np.integer],
        public: Iterable[bool] | NDArray[np.bool_],
    ) -> None:
        """Add many rows at once (bulk load); all or nothing.

        Raises:
            ValueError: Lengths differ, an id repeats or is already stored, or a vector is
                zero, non-finite or of the wrong length.
        """
        ids = np.asarray(list(item_ids) if not isinstance(item_ids, np.ndarray) else item_ids,
                         dtype=np.int64).reshape(-1)
        owners = np.asarray(
            list(owner_ids) if not isinstance(owner_ids, np.ndarray) else owner_ids,
            dtype=np.int64,
        ).reshape(-1)
        flags = np.asarray(list(public) if not isinstance(public, np.ndarray) else public,
                           dtype=np.bool_).reshape(-1)
        units = _as_unit_rows(vectors, self._dim)
        if not len(ids) == len(owners) == len(flags) == len(units):
            raise ValueError("item_ids, vectors, owner_ids and public differ in length")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("item ids repeat")
        with self._lock:
            present = [int(i) for i in ids if int(i) in self._row_of]
            if present:
                raise ValueError(f"item ids already indexed: {present[:5]}")
            self._reserve(self._count + len(ids))
            # Bounded scratch memory and cache-friendly temporaries while encoding.
            chunk = _ENCODE_CHUNK
            for first in range(0, len(ids), chunk):
                rows = slice(first, first + chunk)
                self._write_rows(self._count, _encode(units[rows]))
                stop = self._count + len(ids[rows])
                self._ids[self._count : stop] = ids[rows]
                self._owners[self._count : stop] = owners[rows]
                self._public[self._count : stop] = flags[rows]
                self._row_of.update(zip(ids[rows].tolist(), range(self._count, stop), strict=True))
                self._count = stop

    def update(
        self,
        item_id: int,
        *,
        vector: ArrayLike | None = None,
        owner_id: int | None = None,
        public: bool | None = None,
    ) -> None:
        """Change a row's vector, owner and/or public flag; ``KeyError`` if absent."""
        encoded = None if vector is None else _encode(_as_unit_rows(vector, self._dim))
        if encoded is not None and len(encoded.vectors) != 1:
            raise ValueError("update takes a single vector")
        with self._lock:
            row = self._row_of[item_id]
            if encoded is not None:
                self._write_rows(row, encoded)
            if owner_id is not None:
                self._owners[row] = owner_id
            if public is not None:
                self._public[row] = public

    def remove(self, item_id: int) -> bool:
        """Remove a row (the last row moves into its place); return whether it was present."""
        with self._lock:
            row = self._row_of.pop(item_id, None)
            if row is None:
                return False
            last = self._count - 1
            if row != last:
                self._move_row(last, row)
                self._row_of[int(self._ids[row])] = row
            self._count = last
            self._release_spare_blocks()
            return True

    def _reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows: new blocks, and doubling metadata arrays."""
        while len(self._blocks) * self._block_rows < rows:
            self._blocks.append(_Block.allocate(self._block_rows, self._dim))
        if len(self._ids) < rows:
            capacity = max(rows, 2 * len(self._ids), 1024)
            self._ids = _grown(self._ids, capacity)
            self._owners = _grown(self._owners, capacity)
            self._public = _grown(self._public, capacity)

    def _write_rows(self, start: int, encoded: _Encoded) -> None:
        """Store encoded rows from row ``start`` on, possibly across blocks."""
        done = 0
        total = len(encoded.vectors)
        while done < total:
            number, offset = divmod(start + done, self._block_rows)
            take = min(total - done, self._block_rows - offset)
            block = self._blocks[number]
            source = slice(done, done + take)
            target = slice(offset, offset + take)
            block.vectors[target] = encoded.vectors[source]
            block.codes[target] = encoded.codes[source]
            block.mids[target] = encoded.mids[source]
            block.steps[target] = encoded.steps[source]
            block.errors[target] = encoded.errors[source]
            done += take

    def _move_row(self, source: int, target: int) -> None:
        """Copy row ``source`` over row ``target`` (data and metadata)."""
        src_block, src = divmod(source, self._block_rows)
        dst_block, dst = divmod(target, self._block_rows)
        a, b = self._blocks[src_block], self._blocks[dst_block]
        b.vectors[dst] = a.vectors[src]
        b.codes[dst] = a.codes[src]
        b.mids[dst] = a.mids[src]
        b.steps[dst] = a.steps[src]
        b.errors[dst] = a.errors[src]
        self._ids[target] = self._ids[source]
        self._owners[target] = self._owners[source]
        self._public[target] = self._public[source]

    def _release_spare_blocks(self) -> None:
        """Drop blocks beyond the one in use plus one spare (avoids thrashing at a boundary)."""
        needed = -(-self._count // self._block_rows) + 1
        del self._blocks[needed:]

    # ----------------------------------------------------------------------------- searching

    def search(
        self,
        query: ArrayLike,
        k: int,
        viewer_id: int | None = None,
        allowed_ids: Iterable[int] | NDArray[np.integer] | None = None,
        after: tuple[float, int] | None = None,
    ) -> list[Hit]:
        """Return the ``k`` best rows for ``query`` that the viewer may see.

        Args:
            query: Vector of length ``dim`` (normalised here; cosine similarity).
            k: Most hits to return.
            viewer_id: The signed-in user; ``None`` sees public rows only.
            allowed_ids: If given, only these item ids are ranked (tag/price prefilter).
            after: Keyset cursor: only hits strictly after this ``(score, item_id)`` in the
                result order, e.g. the last hit of the previous page.

        Returns:
            Hits ordered by score descending, then item id ascending.
        """
        q64 = as_unit_query(query, self._dim)
        allowed = None if allowed_ids is None else _id_array(allowed_ids)
        with self._lock:
            count = self._count
            if k <= 0 or count == 0:
                return []
            if allowed is not None and len(allowed) <= max(self._exact_limit,
                                                           count // _EXACT_COST_RATIO):
                return self._rank_items(allowed, q64, k, viewer_id, after)
            eligible = self._visible_mask(count, viewer_id)
            if allowed is not None:
                eligible &= np.isin(self._ids[:count], allowed)
            if count <= self._exact_limit:
                return self._rank_exact(np.flatnonzero(eligible), q64, k, after)
            return self._rank_exact(self._candidates(q64, k, eligible, after), q64, k, after)

    def rank(
        self,
        query: ArrayLike,
        item_ids: Iterable[int] | NDArray[np.integer],
        k: int,
        viewer_id: int | None = None,
        after: tuple[float, int] | None = None,
    ) -> list[Hit]:
        """Score ``item_ids`` exactly; return the best ``k`` the viewer may see after ``after``.

        Ids that are not stored are skipped. Scores and order are those of :meth:`search`, so
        hits of candidates found another way (an approximate search) page like exact ones.
        """
        q64 = as_unit_query(query, self._dim)
        ids = _id_array(item_ids)
        with self._lock:
            if k <= 0:
                return []
            return self._rank_items(ids, q64, k, viewer_id, after)

    def _rank_items(
        self,
        item_ids: NDArray[np.int64],
        q64: NDArray[np.float64],
        k: int,
        viewer_id: int | None,
        after: tuple[float, int] | None,
    ) -> list[Hit]:
        rows = self._rows_of(item_ids)
        rows = rows[self._visible_rows(rows, viewer_id)]
        return self._rank_exact(rows, q64, k, after)

    def _candidates(
        self,
        q64: NDArray[np.float64],
        k: int,
        eligible: NDArray[np.bool_],
        after: tuple[float, int] | None,
    ) -> NDArray[np.int64]:
        """Return the rows that may be in the top k, using the coarse pass's score intervals."""
        query = q64.astype(np.float32)
        # Worst-case float32 rounding of the coarse dot product is gamma_d * sum|q_j * code_j|,
        # with |code_j| <= 128; per row it is scaled by that row's step.
        gamma = self._dim * _F32_EPS / (1.0 - self._dim * _F32_EPS)
        round_k = gamma * 128.0 * float(np.abs(query).sum())
        # Exact scores use the query rounded to multiples of 2**-20: at most
        # sum|x_j| * 2**-21 <= sqrt(dim) * 2**-21 away from the true dot product.
        slack = _ABS_SLACK + float(np.sqrt(self._dim)) * 2.0 ** -(_QUERY_BITS + 1)
        lower, upper = _coarse_bounds(self._blocks, len(eligible), query, round_k, slack)
        if after is not None:
            # Rows with lb > cursor score surely come before the cursor; rows with
            # ub < cursor score surely come after it; the band between is kept and decided
            # on exact scores.
            eligible &= lower <= np.float32(after[0])
            sure = eligible & (upper < np.float32(after[0]))
        else:
            sure = eligible
        threshold = _kth_largest(lower, sure, k)
        # At least k sure rows score >= threshold, so a row with ub < threshold is not in the
        # top k. Band rows have ub >= cursor score > threshold and stay in.
        result: NDArray[np.int64] = np.flatnonzero(eligible & (upper >= threshold))
        return result

    def _rank_exact(
        self,
        rows: NDArray[np.int64],
        q64: NDArray[np.float64],
        k: int,
        after: tuple[float, int] | None,
    ) -> list[Hit]:
        """Score ``rows`` exactly and return the best k after the cursor, in result order."""
        if len(rows) == 0:
            return []
        scores = self._exact_scores(rows, q64)
        ids = self._ids[rows]
        if after is not None:
            score_after, id_after = float(after[0]), int(after[1])
            keep = (scores < score_after) | ((scores == score_after) & (ids > id_after))
            scores, ids = scores[keep], ids[keep]
        if len(scores) > k:
            # Cheap cut before the stable sort; keep every row tied with the k-th score so
            # the id tie-break sees all of them.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            scores, ids = scores[keep], ids[keep]
        order = np.lexsort((ids, -scores))[:k]
        return [Hit(int(i), float(s)) for i, s in zip(ids[order], scores[order], strict=True)]

    def _exact_scores(
        self, rows: NDArray[np.int64], q64: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Return the dot products of the float16 rows with ``q64`` (see ``_VALUE_BITS``)."""
        fixed_query = np.rint(q64 * 2.0**_QUERY_BITS).astype(np.int64)
        scale = 2.0 ** -(_VALUE_BITS + _QUERY_BITS)
        scores = np.empty(len(rows), np.float64)
        blocks, offsets = np.divmod(rows, self._block_rows)
        for first in range(0, len(rows), _EXACT_CHUNK):
            part = slice(first, first + _EXACT_CHUNK)
            bits = np.empty((len(rows[part]), self._dim), np.uint16)
            for number in np.unique(blocks[part]).tolist():
                chosen = blocks[part] == number
                bits[chosen] = self._blocks[number].vectors[offsets[part][chosen]].view(np.uint16)
            totals = np.einsum("ij,j->i", _F16_TO_FIXED[bits], fixed_query)
            scores[part] = totals.astype(np.float64) * scale
        return scores

    def _visible_mask(self, count: int, viewer_id: int | None) -> NDArray[np.bool_]:
        visible = self._public[:count].copy()
        if viewer_id is not None:
            visible |= self._owners[:count] == viewer_id
        return visible

    def _visible_rows(self, rows: NDArray[np.int64], viewer_id: int | None) -> NDArray[np.bool_]:
        visible = self._public[rows]
        if viewer_id is not None:
            visible = visible | (self._owners[rows] == viewer_id)
        return visible

    def _rows_of(self, item_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the rows of the stored ids among ``item_ids`` (unknown ids are skipped)."""
        lookup = self._row_of.get
        rows = [row for row in map(lookup, item_ids.tolist()) if row is not None]
        return np.unique(np.asarray(rows, dtype=np.int64))


def _grown(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    grown = np.zeros(capacity, array.dtype)
    grown[: len(array)] = array
    return grown


def _id_array(item_ids: Iterable[int] | NDArray[np.integer]) -> NDArray[np.int64]:
    if isinstance(item_ids, np.ndarray):
        return item_ids.astype(np.int64, copy=False).reshape(-1)
    return np.fromiter(item_ids, dtype=np.int64)


def _kth_largest(values: NDArray[np.float32], mask: NDArray[np.bool_], k: int) -> float:
    """Return the k-th largest of ``values[mask]`` (``-inf`` if fewer than k), fast.

    The k-th largest of a strided sample is a lower bound for the k-th largest of all, so
    only values above it need a partition; that keeps the work near one pass over ``values``.
    """
    masked = np.where(mask, values, np.float32(-np.inf))
    stride = max(1, len(masked) // _SAMPLE_ROWS)
    sample = masked[::stride]
    if stride > 1 and np.count_nonzero(sample > -np.inf) >= k:
        floor = np.partition(sample, len(sample) - k)[len(sample) - k]
        masked = masked[masked >= floor]
    finite = np.count_nonzero(masked > -np.inf)
    if finite < k:
        return float("-inf")
    return float(np.partition(masked, len(masked) - k)[len(masked) - k])
