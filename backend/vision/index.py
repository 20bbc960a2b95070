"""Provides :class:`VectorIndex`: similar-image ranking, exact for small catalogues, HNSW above.

Every row lives in an :class:`~backend.vision.exact_index.ExactIndex` (float16 vectors, the
values scores are computed from, with item id, owner and public flag). Its exact search reads
every row's 8-bit code per query, which is quick up to some ten thousand rows and then grows
with the catalogue (hundreds of milliseconds at a million rows on the 2-core development
machine).
So from :data:`DEFAULT_APPROXIMATE_FROM` rows on (``mode="auto"``), a
:class:`~backend.vision.hnsw.HnswGraph` proposes candidates among the rows the viewer may see,
and the exact index scores just those. Hits therefore carry exact scores and the same
(score descending, item id ascending) order and keyset cursors either way; what the graph may
miss is a row that belongs in the top ``k``. Recall@24 against the exact index, measured by
``tests/bench/bench_vision.py --sizes 100000,1000000`` on clustered vectors: 0.997 at 100,000
rows (1.8 ms), but only 0.82 at a million (9.6 ms on the loaded machine; 0.89 with four times
the breadth, 15 ms): this graph (``m`` 32, ``efConstruction`` 48) is too coarse at that size.

The graph is built in a background thread from the rows present when it starts, while searches
stay exact; changes made meanwhile are replayed into it before it takes over. Afterwards every
change reaches both. Deleted or re-embedded items leave dead slots in the graph; when they pass
:data:`_REBUILD_DEAD_FRACTION` a fresh graph is built the same way, the old one serving until
then.

Searches the graph would serve badly go to the exact index: a small id prefilter (a rare tag),
and a page the graph cannot fill (deep paging, or a viewer who sees few rows), so a batch is
never cut short by the approximation.

Thread safety: searches may run in worker threads while changes arrive on the event loop; the
exact index and the graph each lock themselves, and one lock here orders changes against a
graph taking over.
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
from backend.vision.hnsw import HnswGraph

__all__ = [
    "DEFAULT_APPROXIMATE_FROM",
    "DEFAULT_DIM",
    "Cursor",
    "ExactIndex",
    "Hit",
    "IndexMode",
    "VectorIndex",
    "as_unit_query",
]

log = logging.getLogger(__name__)

#: ``auto``: exact below :data:`DEFAULT_APPROXIMATE_FROM` rows (or the size given), HNSW
#: candidates from there on; ``exact``: never a graph (the reference); ``approximate``: a graph
#: whatever the size (for tests).
IndexMode = Literal["auto", "exact", "approximate"]
#: Rows from which ``auto`` builds a graph. Below it the exact search takes a few milliseconds
#: (6 ms at 10,000 rows on the busy 2-core development machine, 11 ms at 20,000), and a graph
#: would cost a background build of about a second per 1,000 rows there.
DEFAULT_APPROXIMATE_FROM: Final = 10_000
#: Candidates the graph proposes per hit wanted, and at least; each is scored exactly.
_CANDIDATES_PER_HIT: Final = 4
_MIN_CANDIDATES: Final = 100
#: Breadth of the graph walk (at least the candidates asked for).
_EF_SEARCH: Final = 160
#: A page the graph cannot fill with this many candidates is ranked exactly.
_MAX_CANDIDATES: Final = 4096
#: An id prefilter holding at most this share of the rows is ranked exactly: the graph would
#: walk most of itself to find so few.
_EXACT_PREFILTER_SHARE: Final = 1 / 16
#: A graph with more dead slots than this is rebuilt in the background.
_REBUILD_DEAD_FRACTION: Final = 0.25
#: Rows read from the exact index and added to a graph being built at a time.
_BUILD_CHUNK: Final = 16384
#: A graph being built takes over once at most this many changes are left to replay into it
#: (with the lock held: the event loop's changes wait for them).
_REPLAY_UNDER_LOCK: Final = 64


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
            mode: When to search through a graph (see :data:`IndexMode`).
            approximate_from: Rows from which ``auto`` builds a graph.
        """
        if mode not in ("auto", "exact", "approximate"):
            raise ValueError(f"unknown index mode {mode!r}")
        if approximate_from < 1:
            raise ValueError("approximate_from must be positive")
        self._exact = ExactIndex(dim)
        self._mode: IndexMode = mode
        self._approximate_from = approximate_from if mode == "auto" else 1
        self._lock = threading.Lock()
        #: The graph searches use, once built.
        self._graph: HnswGraph | None = None
        #: Items changed since the graph being built read its rows (``None``: none is).
        self._journal: set[int] | None = None
        self._builder: threading.Thread | None = None
        self._built = threading.Event()
        self._failed = False
        #: Open :meth:`bulk_load` blocks: no graph build starts while one is open.
        self._bulk_loads = 0

    # ----------------------------------------------------------------------------- reading

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._exact.dim

    @property
    def exact(self) -> ExactIndex:
        """The exact index holding every row: the reference the graph's results are held to."""
        return self._exact

    @property
    def graph(self) -> HnswGraph | None:
        """The graph searches go through now, if any (for benchmarks and tests)."""
        return self._graph

    @property
    def approximate(self) -> bool:
        """Whether searches go through a graph now (it may still be building otherwise)."""
        return self._graph is not None

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
        """Bytes allocated for rows, in the exact index and the graph."""
        graph = self._graph
        return self._exact.nbytes + (0 if graph is None else graph.nbytes)

    def wait_until_built(self, timeout: float | None = None) -> bool:
        """Wait until no graph is being built; return whether searches use one now."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self._graph is not None

    # ----------------------------------------------------------------------------- writing

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Hold graph builds back while many chunks are added (a start-up load).

        Without it, the first chunks past the size threshold start a build that the following
        chunks outdate, and builds from partial rows are thrown away one after another; a
        million rows then cost several builds instead of one. On leaving, a build starts if one
        is due. Changes made meanwhile are searched exactly, as before any graph.
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
            graph = self._graph
            if graph is not None and vector is None and item_id in graph:
                # Only visibility changed: no need to insert the row into the graph again.
                row = self._exact.rows([item_id])
                graph.set_visibility(
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
        """Bring the graph (and a graph being built) up to date with the exact index.

        ``replay``: re-add the items' current rows to the graph (or take them out); otherwise
        the caller has already told the graph. Called with the lock held.
        """
        if self._journal is not None:
            self._journal.update(item_ids)
        if self._graph is not None and replay:
            _replay(self._graph, self._exact, item_ids)
        self._maybe_build()

    def _maybe_build(self) -> None:
        """Start a graph build in the background when one is due (lock held)."""
        if self._mode == "exact" or self._failed or self._builder is not None:
            return
        if self._bulk_loads:
            return
        if self._graph is None:
            due = len(self._exact) >= self._approximate_from
        else:
            due = self._graph.dead_fraction > _REBUILD_DEAD_FRACTION
        if due:
            self._builder = threading.Thread(
                target=self._build, name="pixmart-hnsw-build", daemon=True
            )
            self._builder.start()

    # ----------------------------------------------------------------------------- building

    def _build(self) -> None:
        """Build a graph from the present rows, replay what changed meanwhile, switch to it."""
        started = time.monotonic()
        try:
            graph: HnswGraph | None = None
            while graph is None:
                graph, ids = self._build_once()
        except Exception:  # searches stay exact; the shop serves on
            log.exception("could not build the similar-image graph; searches stay exact")
            with self._lock:
                self._journal = None
                self._builder = None
                self._failed = True
            return
        log.info(
            "similar-image graph ready: %d items in %.1f s", len(ids), time.monotonic() - started
        )

    def _build_once(self) -> tuple[HnswGraph | None, NDArray[np.int64]]:
        """Build a graph from the rows present now and make it the one searches use.

        Changes made meanwhile are replayed into it in rounds outside the lock, so the event
        loop's changes never wait for more than the last few. Returns ``None`` for the graph if
        so much changed meanwhile (a bulk load) that building again from all rows is cheaper.
        """
        with self._lock:
            ids = self._exact.item_ids()
            self._journal = set()
        graph = HnswGraph(self.dim)
        for start in range(0, len(ids), _BUILD_CHUNK):
            graph.add(self._exact.rows(ids[start : start + _BUILD_CHUNK]))
        while True:
            with self._lock:
                changed, self._journal = self._journal or set(), set()
                if len(changed) <= _REPLAY_UNDER_LOCK:
                    _replay(graph, self._exact, sorted(changed))
                    self._graph, self._journal, self._builder = graph, None, None
                    return graph, ids
            if len(changed) > max(_BUILD_CHUNK, len(ids) // 4):
                return None, ids
            _replay(graph, self._exact, sorted(changed))

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
        graph = self._graph
        allowed = None if allowed_ids is None else _id_array(allowed_ids)
        small_prefilter = allowed is not None and (
            len(allowed) <= len(self._exact) * _EXACT_PREFILTER_SHARE
        )
        if graph is None or k <= 0 or small_prefilter:
            return self._exact.search(query, k, viewer_id, allowed, after)
        unit = as_unit_query(query, self.dim).astype(np.float32)
        wanted = max(_MIN_CANDIDATES, _CANDIDATES_PER_HIT * k)
        while wanted <= _MAX_CANDIDATES:
            candidates = graph.search(
                unit,
                wanted,
                viewer_id=viewer_id,
                allowed_ids=allowed,
                ef_search=max(_EF_SEARCH, wanted),
            )
            # Scored from ``query`` as the exact search scores it: pages served either way
            # share bit-identical scores, which the keyset cursor compares.
            hits = self._exact.rank(query, candidates, k, viewer_id, after)
            if len(hits) == k:
                return hits
            if len(candidates) < wanted:
                break  # the graph has no more to give: only an exact search can tell the rest
            wanted *= 4
        return self._exact.search(query, k, viewer_id, allowed, after)


def _replay(graph: HnswGraph, exact: ExactIndex, item_ids: list[int]) -> None:
    """Give ``graph`` the current rows of ``item_ids``: re-added if stored, else removed."""
    rows: StoredRows = exact.rows(item_ids)
    present = set(rows.item_ids.tolist())
    for item_id in item_ids:
        if item_id not in present:
            graph.remove(item_id)
    graph.add(rows)


def _id_array(item_ids: Iterable[int] | NDArray[np.integer]) -> NDArray[np.int64]:
    if isinstance(item_ids, np.ndarray):
        return item_ids.astype(np.int64, copy=False).reshape(-1)
    return np.fromiter(item_ids, dtype=np.int64)
