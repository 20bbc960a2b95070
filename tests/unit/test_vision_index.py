"""Tests for the exact vector index: exactness, visibility, prefilters, paging and mutations."""

from __future__ import annotations

import numpy as np
import pytest

from backend.vision.exact_index import ExactIndex

DIM = 64


def brute_force(
    index: ExactIndex,
    rows: dict[int, tuple[int, bool]],
    query: np.ndarray,
    viewer: int | None,
    allowed: set[int] | None = None,
) -> list[tuple[int, float]]:
    """Every visible row's exact float16 score, in result order."""
    unit = query / np.linalg.norm(query)
    scored = [
        (item, float(index.vector(item).astype(np.float64) @ unit))
        for item, (owner, public) in rows.items()
        if (public or owner == viewer) and (allowed is None or item in allowed)
    ]
    return sorted(scored, key=lambda hit: (-hit[1], hit[0]))


def make_index(
    kind: str, count: int = 6000, seed: int = 7
) -> tuple[ExactIndex, dict[int, tuple[int, bool]], np.ndarray]:
    """An index small enough to be quick but past the exact limit, so the coarse pass runs."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        vectors = rng.standard_normal((count, DIM))
    elif kind == "relu":  # non-negative and correlated, like CNN features
        vectors = np.maximum(rng.standard_normal((count, DIM)) + 2 * rng.standard_normal(DIM), 0)
        vectors[:, 0] += 1e-3
    else:  # many exact duplicates: ties decided by item id
        vectors = np.repeat(rng.standard_normal((-(-count // 40), DIM)), 40, axis=0)[:count]
    ids = rng.permutation(10 * count)[:count]
    owners = rng.integers(0, 4, count)
    public = rng.random(count) < 0.5
    index = ExactIndex(DIM, block_rows=1024, exact_limit=64)
    index.add_many(ids, vectors, owners, public)
    rows = {int(i): (int(o), bool(p)) for i, o, p in zip(ids, owners, public, strict=True)}
    return index, rows, vectors


@pytest.mark.parametrize("kind", ["gaussian", "relu", "duplicates"])
# 1024-row blocks: full blocks plus a partly used last one, only full blocks, only a part block.
@pytest.mark.parametrize("count", [6000, 6144, 700])
def test_search_equals_brute_force(kind: str, count: int) -> None:
    index, rows, vectors = make_index(kind, count)
    rng = np.random.default_rng(1)
    for trial in range(6):
        query = vectors[rng.integers(len(vectors))] + 0.05 * rng.standard_normal(DIM)
        viewer = None if trial % 2 else int(rng.integers(0, 4))
        got = index.search(query, 24, viewer_id=viewer)
        expected = brute_force(index, rows, query, viewer)[:24]
        assert [h.item_id for h in got] == [item for item, _ in expected]
        np.testing.assert_allclose([h.score for h in got], [s for _, s in expected], atol=2e-5)


def test_private_rows_of_other_owners_are_never_returned() -> None:
    index, rows, vectors = make_index("relu")
    for viewer in (None, 0, 1, 2, 3):
        for query in vectors[:5]:
            for hit in index.search(query, 200, viewer_id=viewer):
                owner, public = rows[hit.item_id]
                assert public or owner == viewer


def test_owner_sees_own_private_row_first() -> None:
    index = ExactIndex(DIM)
    rng = np.random.default_rng(3)
    secret = rng.standard_normal(DIM)
    index.add(1, secret, owner_id=10, public=False)
    index.add(2, secret + 0.1 * rng.standard_normal(DIM), owner_id=11, public=True)
    assert [h.item_id for h in index.search(secret, 5, viewer_id=10)] == [1, 2]
    assert [h.item_id for h in index.search(secret, 5, viewer_id=11)] == [2]
    assert [h.item_id for h in index.search(secret, 5)] == [2]


def test_count_visible_counts_what_an_unfiltered_search_ranks() -> None:
    index, rows, vectors = make_index("relu", count=700)
    for viewer in (None, 0, 3):
        ranked = index.search(vectors[0], len(rows), viewer_id=viewer)
        assert index.count_visible(viewer) == len(ranked)
    owner, _ = rows[int(ranked[0].item_id)]
    before = index.count_visible(owner)
    index.remove(ranked[0].item_id)
    assert index.count_visible(owner) == before - 1


def test_keyset_paging_returns_every_visible_item_once() -> None:
    index, rows, vectors = make_index("duplicates", count=4000)
    viewer = 2
    visible = {item for item, (owner, public) in rows.items() if public or owner == viewer}
    seen: list[int] = []
    after = None
    for _ in range(1000):
        page = index.search(vectors[0], 97, viewer_id=viewer, after=after)
        if not page:
            break
        seen.extend(hit.item_id for hit in page)
        after = page[-1].cursor()
    assert len(seen) == len(set(seen)) == len(visible)
    assert set(seen) == visible
    # Pages concatenate to exactly the full ranking.
    assert seen == [item for item, _ in brute_force(index, rows, vectors[0], viewer)]


@pytest.mark.parametrize("prefilter_size", [50, 3000])  # gather path and mask path
def test_allowed_ids_prefilter_is_applied_before_ranking(prefilter_size: int) -> None:
    index, rows, vectors = make_index("gaussian")
    rng = np.random.default_rng(5)
    allowed = set(rng.choice(list(rows), prefilter_size, replace=False).tolist()) | {-1}
    query = vectors[0]
    got = index.search(query, 10, viewer_id=1, allowed_ids=np.array(sorted(allowed)))
    expected = brute_force(index, rows, query, 1, allowed)[:10]
    assert [h.item_id for h in got] == [item for item, _ in expected]
    assert len(got) == 10


def test_update_changes_vector_and_visibility() -> None:
    index = ExactIndex(DIM)
    basis = np.eye(DIM)
    index.add(1, basis[0], owner_id=1, public=True)
    index.add(2, basis[1], owner_id=1, public=True)
    [best] = index.search(basis[1], 1)
    assert best.item_id == 2 and best.score == pytest.approx(1.0)
    index.update(1, vector=basis[1])
    assert [h.item_id for h in index.search(basis[1], 2)] == [1, 2]  # tie: lower id first
    index.update(1, public=False)
    assert [h.item_id for h in index.search(basis[1], 2)] == [2]
    assert [h.item_id for h in index.search(basis[1], 2, viewer_id=1)] == [1, 2]
    index.update(1, owner_id=9)
    assert [h.item_id for h in index.search(basis[1], 2, viewer_id=1)] == [2]
    with pytest.raises(KeyError):
        index.update(3, public=True)


def test_remove_swaps_last_row_in_and_keeps_results_exact() -> None:
    index, rows, vectors = make_index("gaussian", count=2100)
    rng = np.random.default_rng(11)
    for item in rng.choice(list(rows), 1200, replace=False).tolist():
        assert index.remove(item)
        del rows[item]
    assert not index.remove(-5)
    assert len(index) == len(rows) == 900
    assert set(index.item_ids().tolist()) == set(rows)
    for query in vectors[:4]:
        got = index.search(query, 30, viewer_id=0)
        expected = brute_force(index, rows, query, 0)[:30]
        assert [h.item_id for h in got] == [item for item, _ in expected]
    # A removed id can come back.
    removed = next(i for i in range(10 * 2100) if i not in rows)
    index.add(removed, -vectors[0], owner_id=0, public=True)
    assert removed in index
    [best] = index.search(-vectors[0], 1)
    assert best.item_id == removed and best.score == pytest.approx(1.0, abs=1e-3)


def test_rank_scores_given_items_as_search_does() -> None:
    index, rows, vectors = make_index("relu")
    query = vectors[3] + 0.01
    best = index.search(query, 40, viewer_id=2)
    candidates = [hit.item_id for hit in best][::-1] + [-7]  # any order; unknown ids skipped
    assert index.rank(query, candidates, 40, viewer_id=2) == best
    assert index.rank(query, candidates, 10, viewer_id=2, after=best[9].cursor()) == best[10:20]
    # Visibility is checked again: another viewer's private rows never come back.
    for hit in index.rank(query, candidates, 40, viewer_id=None):
        assert rows[hit.item_id][1]


def test_rows_returns_the_stored_rows() -> None:
    index, rows, _ = make_index("gaussian", count=3000)
    wanted = list(rows)[::7] + [-1]
    stored = index.rows(wanted)
    assert sorted(stored.item_ids.tolist()) == sorted(wanted[:-1])
    for item_id, vector, owner, public in zip(*stored, strict=True):
        np.testing.assert_array_equal(vector, index.vector(int(item_id)))
        assert rows[int(item_id)] == (owner, public)


def test_invalid_input_is_rejected() -> None:
    index = ExactIndex(DIM)
    index.add(1, np.ones(DIM), owner_id=0, public=True)
    with pytest.raises(ValueError, match="already"):
        index.add(1, np.ones(DIM), owner_id=0, public=True)
    with pytest.raises(ValueError, match="zero"):
        index.add(2, np.zeros(DIM), owner_id=0, public=True)
    with pytest.raises(ValueError):
        index.add(3, np.ones(DIM + 1), owner_id=0, public=True)
    with pytest.raises(ValueError):
        index.add_many([4, 4], np.ones((2, DIM)), [0, 0], [True, True])
    with pytest.raises(ValueError):
        index.search(np.full(DIM, np.nan), 3)
    assert len(index) == 1
    assert index.search(np.ones(DIM), 0) == []
    assert ExactIndex(DIM).search(np.ones(DIM), 5) == []
