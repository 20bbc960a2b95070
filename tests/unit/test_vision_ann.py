"""Tests for the approximate similar-image search: the HNSW graph behind :class:`VectorIndex`.

The exact index is the reference: the graph only proposes candidates, so hits must carry the
exact index's scores, respect visibility and prefilters inside the search, page without
repeating an item, and follow every change made before, during and after the graph's build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.vision.exact_index import ExactIndex
from backend.vision.index import VectorIndex

DIM = 48
OWNERS = 4


def clustered(count: int, seed: int) -> np.ndarray:
    """Vectors in tight groups around shared directions, as pictures of similar things are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, count // 30), DIM))
    return centres[rng.integers(0, len(centres), count)] + 0.3 * rng.standard_normal((count, DIM))


def pair(
    count: int = 3000, seed: int = 7
) -> tuple[VectorIndex, ExactIndex, np.ndarray, dict[int, tuple[int, bool]]]:
    """The same rows in an approximate index (graph built) and in an exact one."""
    rng = np.random.default_rng(seed)
    vectors = clustered(count, seed)
    ids = rng.permutation(10 * count)[:count]
    owners = rng.integers(0, OWNERS, count)
    public = rng.random(count) < 0.7
    approximate = VectorIndex(DIM, mode="approximate")
    exact = ExactIndex(DIM)
    for index in (approximate, exact):
        index.add_many(ids, vectors, owners, public)
    assert approximate.wait_until_built(60)
    rows = {int(i): (int(o), bool(p)) for i, o, p in zip(ids, owners, public, strict=True)}
    return approximate, exact, vectors, rows


def queries(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return vectors[rng.integers(0, len(vectors), count)] + 0.05 * rng.standard_normal((count, DIM))


def test_hits_are_the_exact_ones_with_exact_scores() -> None:
    approximate, exact, vectors, _ = pair()
    found = total = 0
    for number, query in enumerate(queries(vectors, 30)):
        viewer = None if number % 3 == 0 else number % OWNERS
        got = approximate.search(query, 24, viewer_id=viewer)
        want = exact.search(query, 24, viewer_id=viewer)
        assert len(got) == 24
        scores = {hit.item_id: hit.score for hit in exact.search(query, 3000, viewer_id=viewer)}
        assert all(hit.score == scores[hit.item_id] for hit in got)  # bit-identical
        assert got == sorted(got, key=lambda hit: (-hit.score, hit.item_id))
        found += len({hit.item_id for hit in got} & {hit.item_id for hit in want})
        total += len(want)
    assert found / total >= 0.98


def test_other_owners_private_items_are_never_returned() -> None:
    approximate, _, vectors, rows = pair()
    for viewer in (None, *range(OWNERS)):
        for query in queries(vectors, 5, seed=viewer or 0):
            hits = approximate.search(query, 100, viewer_id=viewer)
            assert len(hits) == 100
            for hit in hits:
                owner, public = rows[hit.item_id]
                assert public or owner == viewer


def test_paging_returns_visible_items_once_in_order() -> None:
    """Pages follow one another in the exact order; what a page's candidates lacked is missed.

    The last pages, which the graph cannot fill, are ranked exactly.
    """
    approximate, _, vectors, rows = pair(count=1500)
    viewer = 1
    query = queries(vectors, 1)[0]
    seen = []
    after = None
    while page := approximate.search(query, 97, viewer_id=viewer, after=after):
        seen.extend(page)
        after = page[-1].cursor()
    visible = {item for item, (owner, public) in rows.items() if public or owner == viewer}
    assert seen == sorted(seen, key=lambda hit: (-hit.score, hit.item_id))
    assert len(seen) == len({hit.item_id for hit in seen})
    assert {hit.item_id for hit in seen} <= visible
    assert len(seen) >= 0.99 * len(visible)


@pytest.mark.parametrize("share", [0.02, 0.5])  # ranked exactly; filtered inside the graph walk
def test_prefilter_is_applied_inside_the_search(share: float) -> None:
    approximate, exact, vectors, rows = pair()
    rng = np.random.default_rng(5)
    allowed = rng.choice(list(rows), int(share * len(rows)), replace=False)
    for query in queries(vectors, 5):
        got = approximate.search(query, 24, viewer_id=2, allowed_ids=allowed)
        want = exact.search(query, 24, viewer_id=2, allowed_ids=allowed)
        assert len(got) == len(want) == 24
        assert {hit.item_id for hit in got} <= set(allowed.tolist())
        assert len({h.item_id for h in got} & {h.item_id for h in want}) >= 22


def test_changes_after_the_build_reach_the_graph() -> None:
    approximate, _, vectors, rows = pair()
    query = queries(vectors, 1)[0]
    first = approximate.search(query, 5, viewer_id=None)
    # Deleted: gone at once.
    assert approximate.remove(first[0].item_id)
    assert first[0].item_id not in {h.item_id for h in approximate.search(query, 24)}
    # Made private: only its owner still finds it.
    hidden = first[1].item_id
    approximate.update(hidden, public=False)
    assert hidden not in {h.item_id for h in approximate.search(query, 24)}
    owner = rows[hidden][0]
    assert hidden in {h.item_id for h in approximate.search(query, 24, viewer_id=owner)}
    # Re-embedded, and a new item: both found where their vectors now are.
    elsewhere = -query
    approximate.update(first[2].item_id, vector=elsewhere)
    approximate.add(10**9, elsewhere * 1.01 + 0.01, owner_id=0, public=True)
    found = [h.item_id for h in approximate.search(elsewhere, 2)]
    assert sorted(found) == sorted([first[2].item_id, 10**9])
    assert approximate.approximate


def test_changes_while_the_graph_builds_are_replayed() -> None:
    rng = np.random.default_rng(3)
    vectors = clustered(4000, 3)
    index = VectorIndex(DIM, mode="approximate")
    index.add_many(range(3000), vectors[:3000], [0] * 3000, [True] * 3000)
    # Whatever the build has read by now, these must all be in the graph it hands over.
    index.add_many(range(3000, 4000), vectors[3000:], [0] * 1000, [True] * 1000)
    removed = rng.choice(4000, 300, replace=False).tolist()
    for item_id in removed:
        index.remove(item_id)
    hidden = next(item for item in range(4000) if item not in removed)
    index.update(hidden, public=False)
    assert index.wait_until_built(60)
    for item_id in (3999, 3500, 7):
        if item_id not in removed:
            assert index.search(vectors[item_id], 1)[0].item_id == item_id
    for query in queries(vectors, 20):
        hits = {hit.item_id for hit in index.search(query, 50)}
        assert not hits & (set(removed) | {hidden})


def test_a_graph_with_many_dead_slots_is_rebuilt() -> None:
    approximate, exact, vectors, rows = pair()
    for item_id in list(rows)[: len(rows) // 3]:
        approximate.remove(item_id)
        exact.remove(item_id)
    assert approximate.wait_until_built(60)
    # A fresh graph: only the removals made while it was built left dead slots in it.
    assert approximate._graph is not None and approximate._graph.dead_fraction < 0.25
    for query in queries(vectors, 5):
        got = {hit.item_id for hit in approximate.search(query, 24, viewer_id=1)}
        want = {hit.item_id for hit in exact.search(query, 24, viewer_id=1)}
        assert len(got & want) >= 23


def test_auto_mode_builds_a_graph_only_past_its_size() -> None:
    vectors = clustered(700, 9)
    index = VectorIndex(DIM, approximate_from=600)
    index.add_many(range(500), vectors[:500], [0] * 500, [True] * 500)
    assert not index.wait_until_built(60)
    index.add_many(range(500, 700), vectors[500:], [0] * 200, [True] * 200)
    assert index.wait_until_built(60)
    exact = VectorIndex(DIM, mode="exact")
    exact.add_many(range(700), vectors, [0] * 700, [True] * 700)
    assert not exact.wait_until_built(60)


def test_a_bulk_load_builds_one_graph_once_every_chunk_is_in() -> None:
    vectors = clustered(900, 11)
    index = VectorIndex(DIM, approximate_from=200)
    with index.bulk_load():
        for start in range(0, 900, 300):
            index.add_many(range(start, start + 300), vectors[start : start + 300],
                           [0] * 300, [True] * 300)
            # Past the threshold, yet no build: the next chunks would outdate it at once.
            assert not index.wait_until_built(60) and index.graph is None
    assert index.wait_until_built(60)
    graph = index.graph
    assert graph is not None and len(graph) == 900 and graph.dead_fraction == 0.0
    exact = ExactIndex(DIM)
    exact.add_many(range(900), vectors, [0] * 900, [True] * 900)
    query = vectors[5]
    assert index.search(query, 10) == exact.search(query, 10)


def test_a_serving_process_never_loads_tensorflow() -> None:
    """The index past the old 1,024-row XLA limit, with the server's modules loaded."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import backend.server\n"
        "from backend.vision.index import VectorIndex\n"
        "rng = np.random.default_rng(0)\n"
        "index = VectorIndex(approximate_from=2000)\n"
        "index.add_many(range(3000), rng.standard_normal((3000, 1280)), [0] * 3000, [1] * 3000)\n"
        "assert index.search(rng.standard_normal(1280), 24)\n"
        "assert index.wait_until_built(120)\n"
        "assert len(index.search(rng.standard_normal(1280), 24)) == 24\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_a_graph_that_cannot_be_built_leaves_searches_exact(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def __init__(self, dim: int) -> None:
            raise RuntimeError("no faiss here")

    monkeypatch.setattr("backend.vision.index.HnswGraph", Broken)
    vectors = clustered(600, 4)
    index = VectorIndex(DIM, mode="approximate")
    index.add_many(range(600), vectors, [0] * 600, [True] * 600)
    assert not index.wait_until_built(60)
    assert "searches stay exact" in caplog.text
    assert index.search(vectors[17], 1)[0].item_id == 17
    index.add(600, vectors[0], owner_id=0, public=True)  # no new attempt, no error
    assert not index.wait_until_built(60)
