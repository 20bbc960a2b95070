"""Provides :class:`VectorIndex`: similar-image ranking, exact for small catalogues, IVF above.

Every row lives in an :class:`~backend.vision.exact_index.ExactIndex` (float16 vectors, the
values scores are computed from, with item id, owner and public flag). Its exact search reads
every row's 8-bit code per query, which is quick up to some ten thousand rows and then grows
with the catalogue (hundreds of milliseconds at a million rows on the 2-core development
machine).
So from :data:`DEFAULT_APPROXIMATE_FROM` rows on (``mode="auto"``),
:class:`~backend.vision.ivf.IvfLists` (faiss inverted lists with 8-bit codes) propose
candidates among the rows the viewer may see, and the exact index scores just those. Hits
therefore carry exact scores and the same (score descending, item id ascending) order and
keyset cursors either way; what the lists may miss is a row that belongs in the top ``k``.

How many lists a search scans is calibrated on the catalogue itself when the lists are built
(:func:`calibrate_probes`): the fewest that find at least :data:`_CALIBRATION_RECALL` of the
exact top 24 for a sample of its own rows, so a catalogue of loose, unclustered pictures gets a
broader scan than one of tight groups. Measured by ``tests/bench/bench_vision.py --sizes
100000,1000000`` (see ``README.md`` for the figures): recall@24 against the exact index and
latency at 100,000 and a million rows. This replaced an HNSW graph, which at a million rows
took an hour to build and found only 0.82 of the exact top 24.

The lists are built in a background thread from the rows present when it starts, while
searches stay exact; changes made meanwhile are replayed into them before they take over.
Afterwards every change reaches both. Deleted or re-embedded items leave dead slots in the
lists; when they pass :data:`_REBUILD_DEAD_FRACTION`, or the catalogue has grown
:data:`_RETRAIN_GROWTH` times past the size the lists were trained for (their centroids then
follow old pictures and each list grows long), fresh lists are trained and built the same way,
the old ones serving until then.

Searches the lists would serve badly go to the exact index: a small id prefilter (a rare tag),
and a page the lists cannot fill (deep paging, or a viewer who sees few rows), so a batch is
never cut short by the approximation.

Thread safety: searches may run in worker threads while changes arrive on the event loop; the
exact index and the lists each lock themselves, and one lock here orders changes against new
lists taking over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from backend.vision.exact_index import (
    DEFAULT_DIM,
    Cursor,
    ExactIndex,
    Hit,
    StoredRows,
    as_unit_query,
)
from backend.vision.ivf import IvfLists, lists_for

__all__ = [
    "DEFAULT_APPROXIMATE_FROM",
    "DEFAULT_DIM",
    "Cursor",
    "ExactIndex",
    "Hit",
    "IndexMode",
    "VectorIndex",
    "as_unit_query",
    "calibrate_probes",
]

log = logging.getLogger(__name__)

#: ``auto``: exact below :data:`DEFAULT_APPROXIMATE_FROM` rows (or the size given), IVF
#: candidates from there on; ``exact``: never approximate (the reference); ``approximate``: IVF
#: whatever the size (for tests).
IndexMode = Literal["auto", "exact", "approximate"]
#: Rows from which ``auto`` builds inverted lists. Below it the exact search takes a few
#: milliseconds (9 ms at 10,000 rows on the 2-core development machine, where the lists take
#: 0.7 ms and 1.2 s to train and fill).
DEFAULT_APPROXIMATE_FROM: Final = 10_000
#: Candidates the lists propose per hit wanted, and at least; each is scored exactly.
_CANDIDATES_PER_HIT: Final = 4
_MIN_CANDIDATES: Final = 100
#: A page the lists cannot fill with this many candidates is ranked exactly.
_MAX_CANDIDATES: Final = 4096
#: An id prefilter holding at most this share of the rows is ranked exactly: the lists would
#: scan most of themselves to find so few.
_EXACT_PREFILTER_SHARE: Final = 1 / 16
#: Lists with more dead slots than this are rebuilt in the background.
_REBUILD_DEAD_FRACTION: Final = 0.25
#: Lists are trained again once the catalogue holds this many times the rows they were trained
#: on: the work of a rebuild stays proportional to the rows added.
_RETRAIN_GROWTH: Final = 4
#: Rows read from the exact index and added to lists being built at a time.
_BUILD_CHUNK: Final = 16384
#: Lists being built take over once at most this many changes are left to replay into them
#: (with the lock held: the event loop's changes wait for them).
_REPLAY_UNDER_LOCK: Final = 64
#: Probe calibration: stored rows used as queries (half of them blurred, as a new picture of
#: a stored thing is), the recall@24 they must reach (the product promises 0.98: a margin
#: for queries unlike the catalogue's rows), and the fewest lists probed.
_CALIBRATION_QUERIES: Final = 32
_CALIBRATION_RECALL: Final = 0.99
_CALIBRATION_K: Final = 24
_MIN_PROBES: Final = 4


class VectorIndex:
    """Cosine top-k over item vectors, with owner/public visibility, prefilters and paging."""

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        *,
        mode: IndexMode = "auto",
        approximate_from: int = DEFAULT_APPROXIMATE_FROM,
    ) -> None:
        """Create an empty index.

        Args:
            dim: Vector length.
            mode: When to search through inverted lists (see :data:`IndexMode`).
            approximate_from: Rows from which ``auto`` builds them.
        """
        if mode not in ("auto", "exact", "approximate"):
            raise ValueError(f"unknown index mode {mode!r}")
        if approximate_from < 1:
            raise ValueError("approximate_from must be positive")
        self._exact = ExactIndex(dim)
        self._mode: IndexMode = mode
        self._approximate_from = approximate_from if mode == "auto" else 1
        self._lock = threading.Lock()
        #: The inverted lists searches use, once built.
        self._lists: IvfLists | None = None
        #: Items changed since the lists being built read their rows (``None``: none are).
        self._journal: set[int] | None = None
        self._builder: threading.Thread | None = None
        self._failed = False
        #: Open :meth:`bulk_load` blocks: no build starts while one is open.
        self._bulk_loads = 0

    # ----------------------------------------------------------------------------- reading

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._exact.dim

    @property
    def exact(self) -> ExactIndex:
        """The exact index holding every row: the reference the lists' results are held to."""
        return self._exact

    @property
    def lists(self) -> IvfLists | None:
        """The inverted lists searches go through now, if any (for benchmarks and tests)."""
        return self._lists

    @property
    def approximate(self) -> bool:
        """Whether searches go through inverted lists now (they may still be building)."""
        return self._lists is not None

    def __len__(self) -> int:
        return len(self._exact)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._exact

    def item_ids(self) -> NDArray[np.int64]:
        """Return a copy of the stored item ids."""
        return self._exact.item_ids()

    def count_visible(self, viewer_id: int | None = None) -> int:
        """Return how many rows the viewer may see (as :meth:`search` takes ``viewer_id``)."""
        return self._exact.count_visible(viewer_id)

    def vector(self, item_id: int) -> NDArray[np.float32]:
        """Return the stored unit vector (float16 values) of ``item_id``; ``KeyError`` if absent."""
        return self._exact.vector(item_id)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for rows, in the exact index and the inverted lists."""
        lists = self._lists
        return self._exact.nbytes + (0 if lists is None else lists.nbytes)

    def wait_until_built(self, timeout: float | None = None) -> bool:
        """Wait until no lists are being built; return whether searches use some now."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self._lists is not None

    # ----------------------------------------------------------------------------- writing

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Hold builds of inverted lists back while many chunks are added (a start-up load).

        Without it, the first chunks past the size threshold start a build that the following
        chunks outdate, and builds from partial rows are thrown away one after another; a
        million rows then cost several builds instead of one. On leaving, a build starts if one
        is due. Changes made meanwhile are searched exactly, as before any lists.
        """
        with self._lock:
            self._bulk_loads += 1
        try:
            yield
        finally:
            with self._lock:
                self._bulk_loads -= 1
                self._maybe_build()

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
        ids = np.asarray(
            item_ids if isinstance(item_ids, np.ndarray) else list(item_ids), dtype=np.int64
        ).reshape(-1)
        with self._lock:
            self._exact.add_many(ids, vectors, owner_ids, public)
            self._changed(ids.tolist(), replay=True)

    def update(
        self,
        item_id: int,
        *,
        vector: ArrayLike | None = None,
        owner_id: int | None = None,
        public: bool | None = None,
    ) -> None:
        """Change a row's vector, owner and/or public flag; ``KeyError`` if absent."""
        with self._lock:
            self._exact.update(item_id, vector=vector, owner_id=owner_id, public=public)
            lists = self._lists
            if lists is not None and vector is None and item_id in lists:
                # Only visibility changed: no need to file the row again.
                row = self._exact.rows([item_id])
                lists.set_visibility(
                    item_id, owner_id=int(row.owner_ids[0]), public=bool(row.public[0])
                )
                self._changed([item_id], replay=False)
            else:
                self._changed([item_id], replay=True)

    def remove(self, item_id: int) -> bool:
        """Remove a row; return whether it was present."""
        with self._lock:
            if not self._exact.remove(item_id):
                return False
            self._changed([item_id], replay=True)
            return True

    def _changed(self, item_ids: list[int], *, replay: bool) -> None:
        """Bring the lists (and lists being built) up to date with the exact index.

        ``replay``: re-add the items' current rows to the lists (or take them out); otherwise
        the caller has already told the lists. Called with the lock held.
        """
        if self._journal is not None:
            self._journal.update(item_ids)
        if self._lists is not None and replay:
            _replay(self._lists, self._exact, item_ids)
        self._maybe_build()

    def _maybe_build(self) -> None:
        """Start building inverted lists in the background when due (lock held)."""
        if self._mode == "exact" or self._failed or self._builder is not None:
            return
        if self._bulk_loads:
            return
        if self._lists is None:
            due = len(self._exact) >= self._approximate_from
        else:
            due = (
                self._lists.dead_fraction > _REBUILD_DEAD_FRACTION
                or len(self._exact) >= _RETRAIN_GROWTH * self._lists.trained_rows
            )
        if due:
            self._builder = threading.Thread(
                target=self._build, name="pixmart-ivf-build", daemon=True
            )
            self._builder.start()

    # ----------------------------------------------------------------------------- building

    def _build(self) -> None:
        """Train and fill lists from the present rows, replay what changed meanwhile, switch."""
        started = time.monotonic()
        try:
            done = False
            while not done:
                done, lists, ids = self._build_once()
        except Exception:  # searches stay exact; the shop serves on
            log.exception("could not build the similar-image lists; searches stay exact")
            with self._lock:
                self._journal = None
                self._builder = None
                self._lists = None
                self._failed = True
            return
        if lists is not None:
            log.info(
                "similar-image lists ready: %d items in %d lists, %d probed, %.1f s",
                len(ids), lists.lists, lists.probes, time.monotonic() - started,
            )

    def _build_once(self) -> tuple[bool, IvfLists | None, NDArray[np.int64]]:
        """Build lists from the rows present now and make them the ones searches use.

        Changes made meanwhile are replayed into them in rounds outside the lock, so the event
        loop's changes never wait for more than the last few. Returns ``False`` first if so
        much changed meanwhile (a bulk load) that building again from all rows is cheaper; the
        lists are ``None`` if no row is left (searches are exact then).
        """
        with self._lock:
            ids = self._exact.item_ids()
            if len(ids) == 0:
                self._lists, self._journal, self._builder = None, None, None
                return True, None, ids
            self._journal = set()
        lists = IvfLists(self.dim, lists=lists_for(len(ids)))
        rng = np.random.default_rng(len(ids))
        sample = rng.choice(ids, min(len(ids), 40 * lists.lists), replace=False)
        lists.train(self._exact.rows(np.sort(sample)).vectors, catalogue_rows=len(ids))
        for start in range(0, len(ids), _BUILD_CHUNK):
            lists.add(self._exact.rows(ids[start : start + _BUILD_CHUNK]))
        lists.probes = calibrate_probes(lists, self._exact, rng.choice(ids, _CALIBRATION_QUERIES))
        while True:
            with self._lock:
                changed, self._journal = self._journal or set(), set()
                if len(changed) <= _REPLAY_UNDER_LOCK:
                    _replay(lists, self._exact, sorted(changed))
                    self._lists, self._journal, self._builder = lists, None, None
                    return True, lists, ids
            if len(changed) > max(_BUILD_CHUNK, len(ids) // 4):
                return False, None, ids
            _replay(lists, self._exact, sorted(changed))

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
            Hits ordered by score descending, then item id ascending, with exact scores.
        """
        lists = self._lists
        allowed = None if allowed_ids is None else _id_array(allowed_ids)
        small_prefilter = allowed is not None and (
            len(allowed) <= len(self._exact) * _EXACT_PREFILTER_SHARE
        )
        if lists is None or k <= 0 or small_prefilter:
            return self._exact.search(query, k, viewer_id, allowed, after)
        unit = as_unit_query(query, self.dim).astype(np.float32)
        probes = lists.probes
        wanted = max(_MIN_CANDIDATES, _CANDIDATES_PER_HIT * k)
        while wanted <= _MAX_CANDIDATES:
            candidates = lists.search(
                unit, wanted, viewer_id=viewer_id, allowed_ids=allowed, probes=probes
            )
            # Scored from ``query`` as the exact search scores it: pages served either way
            # share bit-identical scores, which the keyset cursor compares.
            ranked = self._exact.rank(query, candidates, len(candidates), viewer_id, after)
            # The probes were calibrated for the first 24 hits. A later page (candidates at or
            # before its cursor) or a larger one needs the nearest ``depth + k``: scan
            # proportionally more lists, or the page would skip rows of the lists left out.
            depth = len(candidates) - len(ranked)
            needed = min(lists.lists, lists.probes * -(-(depth + k) // _CALIBRATION_K))
            if probes < needed:
                probes = needed
                wanted = max(wanted, _CANDIDATES_PER_HIT * (depth + k))
            elif len(ranked) >= k:
                return ranked[:k]
            elif len(candidates) < wanted and probes < lists.lists:
                probes = min(lists.lists, 4 * probes)  # the probed lists ran dry
            elif len(candidates) < wanted:
                break  # every list scanned: only an exact search can tell the rest
            else:
                wanted *= 4
        return self._exact.search(query, k, viewer_id, allowed, after)


def calibrate_probes(lists: IvfLists, exact: ExactIndex, query_ids: NDArray[np.int64]) -> int:
    """Return the fewest lists to probe for recall@24 >= ``_CALIBRATION_RECALL`` on the catalogue.

    The queries are the stored rows of ``query_ids``, every other one blurred with noise (cosine
    about 0.8 to the row, as a new picture of a stored thing is); each is answered as
    :meth:`VectorIndex.search` would (candidates re-ranked exactly, public rows) and compared
    with the exact top 24. Probes double from :data:`_MIN_PROBES` until the recall is reached
    (at most every list: a scan of every code, still cheaper than the exact search).
    """
    rows = exact.rows(query_ids)
    rng = np.random.default_rng(0)
    queries = rows.vectors.astype(np.float32)
    # Noise of norm 0.7 in every other row: cosine about 0.8 to the row it blurs.
    noise = rng.standard_normal(queries[1::2].shape, dtype=np.float32)
    queries[1::2] += noise * np.float32(0.7 / np.sqrt(exact.dim))
    truth = [
        {hit.item_id for hit in exact.search(query, _CALIBRATION_K)} for query in queries
    ]
    wanted = max(_MIN_CANDIDATES, _CANDIDATES_PER_HIT * _CALIBRATION_K)
    probes = min(_MIN_PROBES, lists.lists)
    while probes < lists.lists:
        found = 0
        for query, want in zip(queries, truth, strict=True):
            unit = as_unit_query(query, exact.dim).astype(np.float32)
            candidates = lists.search(unit, wanted, viewer_id=None, probes=probes)
            hits = exact.rank(query, candidates, _CALIBRATION_K, None, None)
            found += len(want.intersection(hit.item_id for hit in hits))
        if found >= _CALIBRATION_RECALL * sum(len(want) for want in truth):
            break
        probes *= 2
    return min(probes, lists.lists)


def _replay(lists: IvfLists, exact: ExactIndex, item_ids: list[int]) -> None:
    """Give ``lists`` the current rows of ``item_ids``: re-added if stored, else removed."""
    rows: StoredRows = exact.rows(item_ids)
    present = set(rows.item_ids.tolist())
    for item_id in item_ids:
        if item_id not in present:
            lists.remove(item_id)
    lists.add(rows)


def _id_array(item_ids: Iterable[int] | NDArray[np.integer]) -> NDArray[np.int64]:
    if isinstance(item_ids, np.ndarray):
        return item_ids.astype(np.int64, copy=False).reshape(-1)
    return np.fromiter(item_ids, dtype=np.int64)
