"""Tests for the approximate similar-image search: the IVF lists behind :class:`VectorIndex`.

The exact index is the reference: the lists only propose candidates, so hits must carry the
exact index's scores, respect visibility and prefilters inside the search, page without
repeating an item, and follow every change made before, during and after the lists' build
(and retraining).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.vision.exact_index import ExactIndex, StoredRows
from backend.vision.index import VectorIndex, calibrate_probes
from backend.vision.ivf import IvfLists, lists_for

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
    """The same rows in an approximate index (lists built) and in an exact one."""
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

    The last pages, which the lists cannot fill, are ranked exactly.
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


@pytest.mark.parametrize("share", [0.02, 0.5])  # ranked exactly; filtered inside the list scan
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


def test_changes_after_the_build_reach_the_lists() -> None:
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


def test_changes_while_the_lists_build_are_replayed() -> None:
    rng = np.random.default_rng(3)
    vectors = clustered(4000, 3)
    index = VectorIndex(DIM, mode="approximate")
    index.add_many(range(3000), vectors[:3000], [0] * 3000, [True] * 3000)
    # Whatever the build has read by now, these must all be in the lists it hands over.
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


def test_lists_with_many_dead_slots_are_rebuilt() -> None:
    approximate, exact, vectors, rows = pair()
    for item_id in list(rows)[: len(rows) // 3]:
        approximate.remove(item_id)
        exact.remove(item_id)
    assert approximate.wait_until_built(60)
    # Fresh lists: only the removals made while they were built left dead slots in them.
    assert approximate.lists is not None and approximate.lists.dead_fraction < 0.25
    for query in queries(vectors, 5):
        got = {hit.item_id for hit in approximate.search(query, 24, viewer_id=1)}
        want = {hit.item_id for hit in exact.search(query, 24, viewer_id=1)}
        assert len(got & want) >= 23


def test_auto_mode_builds_lists_only_past_its_size() -> None:
    vectors = clustered(700, 9)
    index = VectorIndex(DIM, approximate_from=600)
    index.add_many(range(500), vectors[:500], [0] * 500, [True] * 500)
    assert not index.wait_until_built(60)
    index.add_many(range(500, 700), vectors[500:], [0] * 200, [True] * 200)
    assert index.wait_until_built(60)
    exact = VectorIndex(DIM, mode="exact")
    exact.add_many(range(700), vectors, [0] * 700, [True] * 700)
    assert not exact.wait_until_built(60)


def test_a_bulk_load_builds_lists_once_every_chunk_is_in() -> None:
    vectors = clustered(900, 11)
    index = VectorIndex(DIM, approximate_from=200)
    with index.bulk_load():
        for start in range(0, 900, 300):
            index.add_many(range(start, start + 300), vectors[start : start + 300],
                           [0] * 300, [True] * 300)
            # Past the threshold, yet no build: the next chunks would outdate it at once.
            assert not index.wait_until_built(60) and index.lists is None
    assert index.wait_until_built(60)
    lists = index.lists
    assert lists is not None and len(lists) == 900 and lists.dead_fraction == 0.0
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


def test_lists_that_cannot_be_built_leave_searches_exact(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def __init__(self, dim: int, *, lists: int) -> None:
            raise RuntimeError("no faiss here")

    monkeypatch.setattr("backend.vision.index.IvfLists", Broken)
    vectors = clustered(600, 4)
    index = VectorIndex(DIM, mode="approximate")
    index.add_many(range(600), vectors, [0] * 600, [True] * 600)
    assert not index.wait_until_built(60)
    assert "searches stay exact" in caplog.text
    assert index.search(vectors[17], 1)[0].item_id == 17
    index.add(600, vectors[0], owner_id=0, public=True)  # no new attempt, no error
    assert not index.wait_until_built(60)


# --------------------------------------------------------------------------- IvfLists alone


def stored(ids: np.ndarray, vectors: np.ndarray, owners: np.ndarray, public: np.ndarray,
           ) -> StoredRows:
    unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return StoredRows(np.asarray(ids, np.int64), unit, np.asarray(owners, np.int64),
                      np.asarray(public, np.bool_))


def trained_lists(count: int = 4000, seed: int = 21) -> tuple[IvfLists, StoredRows]:
    rng = np.random.default_rng(seed)
    rows = stored(np.arange(count) * 3 + 1, clustered(count, seed), rng.integers(0, OWNERS, count),
                  rng.random(count) < 0.7)
    lists = IvfLists(DIM, lists=lists_for(count))
    lists.train(rows.vectors, catalogue_rows=count)
    lists.add(rows)
    return lists, rows


def test_lists_for_grows_with_the_square_root_and_stays_trainable() -> None:
    assert lists_for(1) == lists_for(50) == 1
    assert lists_for(4000) == 64  # 2 sqrt(4000) = 126, but k-means wants 39 rows a list
    assert lists_for(100_000) == 512
    assert lists_for(1_000_000) == 2048
    with pytest.raises(ValueError):
        lists_for(0)


def test_lists_never_return_another_viewers_private_items() -> None:
    lists, rows = trained_lists()
    owner_of = dict(zip(rows.item_ids.tolist(), rows.owner_ids.tolist(), strict=True))
    public_of = dict(zip(rows.item_ids.tolist(), rows.public.tolist(), strict=True))
    for viewer in (None, *range(OWNERS)):
        for query in rows.vectors[:20]:
            # Every list probed: the scan meets every private row, and must skip the others'.
            found = lists.search(query, 500, viewer_id=viewer, probes=lists.lists)
            assert len(found) == 500
            assert all(public_of[item] or owner_of[item] == viewer for item in found.tolist())
    own = int(rows.item_ids[~rows.public][0])
    query = rows.vectors[rows.item_ids.tolist().index(own)]
    assert own in lists.search(query, 5, viewer_id=owner_of[own]).tolist()
    assert own not in lists.search(query, 5, viewer_id=None).tolist()


def test_lists_forget_removed_items_and_move_updated_ones() -> None:
    lists, rows = trained_lists()
    first, second = (int(item) for item in rows.item_ids[rows.public][:2])
    assert lists.remove(first) and not lists.remove(first)
    assert first not in lists
    query = rows.vectors[rows.item_ids.tolist().index(first)]
    assert first not in lists.search(query, 50, viewer_id=None, probes=lists.lists).tolist()
    # Re-added elsewhere: found there, its old slot dead.
    moved = stored(np.array([second]), -query[None], np.array([0]), np.array([True]))
    lists.add(moved)
    assert lists.search(-query, 1, viewer_id=None)[0] == second
    assert len(lists) == len(rows.item_ids) - 1
    assert lists.dead_fraction == pytest.approx(2 / (len(rows.item_ids) + 1))
    # Made private: its owner finds it, nobody else does.
    lists.set_visibility(second, owner_id=3, public=False)
    assert second not in lists.search(-query, 5, viewer_id=2).tolist()
    assert lists.search(-query, 1, viewer_id=3)[0] == second


def test_lists_take_rows_added_after_training_and_refuse_them_before() -> None:
    lists, rows = trained_lists()
    fresh = stored(np.array([10**9]), clustered(1, 99), np.array([1]), np.array([True]))
    lists.add(fresh)
    assert lists.search(fresh.vectors[0], 1, viewer_id=None)[0] == 10**9
    untrained = IvfLists(DIM, lists=4)
    with pytest.raises(RuntimeError):
        untrained.add(fresh)
    with pytest.raises(ValueError):
        untrained.train(fresh.vectors, catalogue_rows=1)  # fewer rows than lists
    with pytest.raises(ValueError):
        lists.train(rows.vectors, catalogue_rows=4000)  # trained already


def test_a_few_probed_lists_find_nearly_all_of_the_exact_top_24() -> None:
    """Scanning an eighth of the lists must find >= 0.95 of the top 24 (random picks: 0.03)."""
    lists, rows = trained_lists(count=6000)
    exact = ExactIndex(DIM)
    exact.add_many(rows.item_ids, rows.vectors, rows.owner_ids, rows.public)
    probes = lists.lists // 8
    found = total = 0
    for query in queries(rows.vectors, 40):
        unit = (query / np.linalg.norm(query)).astype(np.float32)
        candidates = lists.search(unit, 100, viewer_id=1, probes=probes)
        got = {hit.item_id for hit in exact.rank(query, candidates, 24, 1)}
        want = {hit.item_id for hit in exact.search(query, 24, viewer_id=1)}
        found += len(got & want)
        total += len(want)
    assert found / total >= 0.95
    # The calibration meets its recall without scanning every list on such grouped pictures.
    calibrated = calibrate_probes(lists, exact, rows.item_ids[:32])
    assert 4 <= calibrated < lists.lists


def test_a_grown_catalogue_gets_lists_trained_again_and_keeps_its_changes() -> None:
    vectors = clustered(5000, 13)
    index = VectorIndex(DIM, mode="approximate")
    index.add_many(range(1000), vectors[:1000], [0] * 1000, [True] * 1000)
    assert index.wait_until_built(60)
    first = index.lists
    assert first is not None and first.trained_rows == 1000
    # Four times the rows: new lists are trained in the background, the old ones serve.
    index.add_many(range(1000, 4000), vectors[1000:4000], [0] * 3000, [True] * 3000)
    assert index.search(vectors[3999], 1)[0].item_id == 3999
    # Changes while they are built are replayed into them.
    index.remove(5)
    index.update(6, public=False)
    index.add_many(range(4000, 4100), vectors[4000:4100], [0] * 100, [True] * 100)
    assert index.wait_until_built(60)
    second = index.lists
    assert second is not None and second is not first and second.trained_rows >= 4000
    assert second.lists > first.lists
    assert 5 not in second and 4099 in second
    for item_id in (4099, 2500, 17):
        assert index.search(vectors[item_id], 1)[0].item_id == item_id
    assert not {hit.item_id for hit in index.search(vectors[5], 50)} & {5, 6}
