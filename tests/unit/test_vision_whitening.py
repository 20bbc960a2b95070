"""Tests for the whitening of embeddings by the shipped linear map."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from backend.vision import whitening
from backend.vision.types import EMBEDDING_DIM
from backend.vision.whitening import (
    Whitening,
    WhiteningError,
    fit,
    shipped_whitening,
    to_bytes,
    whiten_rows,
)


def _unit(rows: np.ndarray) -> np.ndarray:
    result: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return result


def _pin(monkeypatch: pytest.MonkeyPatch, path: Path, content: bytes) -> None:
    path.write_bytes(content)
    monkeypatch.setattr(whitening, "WHITENING_SHA256", hashlib.sha256(content).hexdigest())


def test_the_shipped_map_is_pinned_and_keeps_the_embedding_width() -> None:
    shipped = shipped_whitening()
    assert shipped.mean.shape == (EMBEDDING_DIM,)
    assert shipped.projection.shape == (EMBEDDING_DIM, EMBEDDING_DIM)
    assert shipped.projection.dtype == np.float32 and not shipped.projection.flags.writeable
    # Full rank: no direction of the embedding is thrown away.
    assert np.linalg.matrix_rank(shipped.projection.astype(np.float64)) == EMBEDDING_DIM
    rows = _unit(np.random.default_rng(0).standard_normal((5, EMBEDDING_DIM)))
    whitened = whiten_rows(rows)
    assert whitened.shape == rows.shape and whitened.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(whitened, axis=1), 1.0, atol=1e-5)


def test_an_altered_or_missing_map_is_refused(tmp_path: Path) -> None:
    altered = tmp_path / "whitening.npy"
    altered.write_bytes(to_bytes(Whitening(np.zeros(EMBEDDING_DIM, np.float32),
                                           np.eye(EMBEDDING_DIM, dtype=np.float32))))
    with pytest.raises(WhiteningError, match="not the pinned one"):
        shipped_whitening(altered)
    with pytest.raises(WhiteningError, match="cannot be read"):
        shipped_whitening(tmp_path / "missing.npy")


def test_a_map_of_the_wrong_shape_or_a_malformed_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small.npy"
    _pin(monkeypatch, small, to_bytes(Whitening(np.zeros(7, np.float32),
                                                np.eye(7, dtype=np.float32))))
    with pytest.raises(WhiteningError, match="wrong shape"):
        shipped_whitening(small)
    garbage = tmp_path / "garbage.npy"
    _pin(monkeypatch, garbage, b"not an array at all")
    with pytest.raises(WhiteningError, match="malformed"):
        shipped_whitening(garbage)


def test_the_map_round_trips_through_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    made = fit(_unit(rng.standard_normal((EMBEDDING_DIM + 200, EMBEDDING_DIM))))
    path = tmp_path / "whitening.npy"
    _pin(monkeypatch, path, to_bytes(made))
    loaded = shipped_whitening(path)
    rows = _unit(rng.standard_normal((20, EMBEDDING_DIM)))
    # Stored as float16: the whitened directions agree to within that precision.
    cosines = np.sum(made.apply(rows) * loaded.apply(rows), axis=1)
    assert cosines.min() > 0.9999


def test_whitening_evens_out_the_variance_of_the_axes() -> None:
    rng = np.random.default_rng(2)
    dim = 16
    # One axis dominates: its variance is 400 times every other's.
    scales = np.ones(dim)
    scales[0] = 20.0
    rows = rng.standard_normal((4000, dim)) * scales
    full = fit(rows, power=0.5, shrink=0.0)
    whitened = (rows - full.mean) @ full.projection
    np.testing.assert_allclose(np.var(whitened, axis=0), 1.0, rtol=0.1)
    # Shrinking damps the dominant axis less than full whitening does, the quiet ones alike.
    shrunk = fit(rows, power=0.5, shrink=1.0)
    spread = np.var((rows - shrunk.mean) @ shrunk.projection, axis=0)
    assert 1.5 < spread.max() / spread.min() < 400
    # Power 0 only rotates: distances are kept.
    rotated = fit(rows, power=0.0, shrink=1.0)
    moved = (rows[:2] - rotated.mean) @ rotated.projection
    assert np.linalg.norm(moved[0] - moved[1]) == pytest.approx(
        np.linalg.norm(rows[0] - rows[1]), rel=1e-9)


def test_a_row_equal_to_the_mean_is_left_as_it_was() -> None:
    dim = 8
    rows = _unit(np.random.default_rng(3).standard_normal((100, dim)))
    made = fit(rows)
    probe = np.vstack([made.mean / np.linalg.norm(made.mean), made.mean]).astype(np.float32)
    result = made.apply(probe)
    np.testing.assert_array_equal(result[1], made.mean)
    assert np.isfinite(result).all()


def test_fitting_needs_more_rows_than_dimensions_and_finite_values() -> None:
    with pytest.raises(ValueError, match="more of them than dimensions"):
        fit(np.ones((4, 8)))
    rows = np.random.default_rng(4).standard_normal((20, 8))
    rows[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit(rows)
