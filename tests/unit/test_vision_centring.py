"""Tests for the centring of descriptors on the shipped mean descriptor."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from backend.vision import centring
from backend.vision.centring import CentringError, centre_rows, embedding_mean, format_mean
from backend.vision.pooling import HEAD_CHANNELS, PARTS
from backend.vision.types import EMBEDDING_DIM


def test_the_shipped_mean_is_pinned_and_has_the_embedding_length() -> None:
    mean = embedding_mean()
    assert mean.shape == (EMBEDDING_DIM,) and mean.dtype == np.float32
    assert np.isfinite(mean).all()
    # Each part is the mean of unit vectors of non-negative features: inside the unit ball, far
    # from zero.
    for span, _ in PARTS:
        assert 0.3 < float(np.linalg.norm(mean[span])) < 1.0
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


def _descriptors(rng: np.random.Generator, mean: np.ndarray, spread: float,
                 count: int) -> np.ndarray:
    """``count`` descriptors near ``mean``: each part a unit vector around the mean's part."""
    rows = mean + rng.standard_normal((count, EMBEDDING_DIM)).astype(np.float32) * spread
    for span, _ in PARTS:
        rows[:, span] /= np.linalg.norm(rows[:, span], axis=1, keepdims=True)
    result: np.ndarray = rows.astype(np.float32)
    return result


def _shared_mean() -> np.ndarray:
    """A mean with one strong shared component in each part."""
    mean = np.zeros(EMBEDDING_DIM, np.float32)
    mean[0] = mean[HEAD_CHANNELS] = 0.9
    return mean


def test_centring_removes_the_shared_component_and_normalises() -> None:
    mean = _shared_mean()
    rows = _descriptors(np.random.default_rng(1), mean, 0.004, 3)
    centred = centre_rows(rows.copy(), mean)
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, rtol=1e-5)
    # Before: all three look alike (the shared component); after: they are told apart.
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert (unit @ unit.T).min() > 0.9
    off_diagonal = (centred @ centred.T)[~np.eye(3, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.5


def test_the_cosine_is_the_weighted_mean_of_the_parts_cosines() -> None:
    rng = np.random.default_rng(2)
    mean = _shared_mean()
    first, second = centre_rows(_descriptors(rng, mean, 0.004, 2), mean)
    (head, head_weight), (mid, mid_weight) = PARTS

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    expected = (head_weight * cosine(first[head], second[head])
                + mid_weight * cosine(first[mid], second[mid])) / (head_weight + mid_weight)
    assert float(first @ second) == pytest.approx(expected, abs=1e-5)
    # The mid part carries its weight's share of each unit embedding.
    share = float(np.linalg.norm(first[mid]) ** 2)
    assert share == pytest.approx(mid_weight / (head_weight + mid_weight), rel=1e-4)


def test_a_part_equal_to_its_mean_is_kept_rather_than_zeroed() -> None:
    mean = _shared_mean()
    rows = _descriptors(np.random.default_rng(3), mean, 0.004, 2)
    rows[0, :HEAD_CHANNELS] = mean[:HEAD_CHANNELS]
    centred = centre_rows(rows.copy(), mean)
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, rtol=1e-5)
    kept = centred[0, :HEAD_CHANNELS]
    np.testing.assert_allclose(kept / np.linalg.norm(kept), mean[:HEAD_CHANNELS] / 0.9,
                               atol=1e-6)
