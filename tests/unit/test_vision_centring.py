"""Tests for the centring of embeddings on the shipped mean embedding."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from backend.vision import centring
from backend.vision.centring import CentringError, centre_rows, embedding_mean, format_mean
from backend.vision.types import EMBEDDING_DIM


def test_the_shipped_mean_is_pinned_and_has_the_embedding_length() -> None:
    mean = embedding_mean()
    assert mean.shape == (EMBEDDING_DIM,) and mean.dtype == np.float32
    assert np.isfinite(mean).all()
    # The mean of unit vectors of non-negative features: inside the unit ball, far from zero.
    assert 0.3 < float(np.linalg.norm(mean)) < 1.0
    assert not mean.flags.writeable


def test_an_altered_mean_file_is_refused(tmp_path: Path) -> None:
    text = format_mean(np.full(EMBEDDING_DIM, 0.01, np.float32), ["made by a test"])
    altered = tmp_path / "mean.txt"
    altered.write_text(text, encoding="ascii")
    with pytest.raises(CentringError, match="not the pinned one"):
        embedding_mean(altered)
    with pytest.raises(CentringError, match="cannot be read"):
        embedding_mean(tmp_path / "missing.txt")


def test_a_mean_file_of_the_wrong_length_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = format_mean(np.full(7, 0.01, np.float32), ["seven values"])
    short = tmp_path / "short.txt"
    short.write_text(text, encoding="ascii")
    monkeypatch.setattr(centring, "MEAN_SHA256", hashlib.sha256(text.encode()).hexdigest())
    with pytest.raises(CentringError, match="wrong shape"):
        embedding_mean(short)


def test_the_mean_file_round_trips_through_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mean = (np.random.default_rng(0).random(EMBEDDING_DIM, dtype=np.float32) / 40).astype(
        np.float32
    )
    text = format_mean(mean, ["first line", "second line"])
    assert text.startswith("# first line\n# second line\n")
    path = tmp_path / "mean.txt"
    path.write_text(text, encoding="ascii")
    monkeypatch.setattr(centring, "MEAN_SHA256", hashlib.sha256(text.encode()).hexdigest())
    np.testing.assert_array_equal(embedding_mean(path), mean)


def test_centring_removes_the_shared_component_and_normalises() -> None:
    rng = np.random.default_rng(1)
    mean = np.zeros(8, np.float32)
    mean[0] = 0.9
    own = rng.standard_normal((3, 8)).astype(np.float32) * 0.1
    own[:, 0] = 0
    rows = mean + own
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    centred = centre_rows(rows.copy(), mean)
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, rtol=1e-6)
    # Before: all three look alike (the shared component); after: they are told apart.
    assert (rows @ rows.T).min() > 0.9
    off_diagonal = (centred @ centred.T)[~np.eye(3, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.9


def test_a_row_equal_to_the_mean_is_kept_rather_than_zeroed() -> None:
    mean = np.zeros(4, np.float32)
    mean[1] = 1.0
    rows = np.array([[0, 1, 0, 0], [1, 0, 0, 0]], np.float32)
    centred = centre_rows(rows.copy(), mean)
    np.testing.assert_array_equal(centred[0], rows[0])
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, rtol=1e-6)
