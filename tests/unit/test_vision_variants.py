"""Tests for the measures of ``python -m tests.bench.vision_variants`` (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.vision.evaluate import precision_at_k
from tests.bench.vision_variants import (
    centre_square,
    centred_parts,
    crow_channel,
    crow_spatial,
    expanded_precision,
    pca,
    rmac,
    squashed,
    whole_and_halves,
)


def _clusters() -> tuple[np.ndarray, np.ndarray]:
    """Two classes of five noisy copies around two directions that share a common offset."""
    rng = np.random.default_rng(3)
    offset = np.full(16, 2.0, np.float32)
    centres = np.eye(16, dtype=np.float32)[:2]
    vectors = np.concatenate([offset + c + rng.normal(0, 0.3, (5, 16)) for c in centres])
    return vectors.astype(np.float32), np.repeat([0, 1], 5).astype(np.int64)


def test_centring_removes_the_shared_offset_that_hides_the_classes() -> None:
    vectors, labels = _clusters()
    plain = precision_at_k(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels)
    centred = precision_at_k(pca(vectors, 16, whiten=False), labels)
    assert centred[1] == 1.0 and centred[5] >= plain[5]


def test_query_expansion_keeps_the_first_hit_on_clean_clusters() -> None:
    vectors, labels = _clusters()
    unit = pca(vectors, 16, whiten=False)
    expanded = expanded_precision(unit, labels, neighbours=1)
    assert expanded[1] == pytest.approx(precision_at_k(unit, labels)[1])


def test_inputs_and_rmac_have_the_network_shapes() -> None:
    wide = Image.new("RGB", (300, 100), (10, 20, 30))
    assert centre_square(wide).shape == squashed(wide).shape == (224, 224, 3)
    feature_map = np.random.default_rng(0).random((2, 7, 7, 8), dtype=np.float32)
    assert rmac(feature_map).shape == (2, 8)


def test_crow_weights_have_their_shapes_and_favour_busy_places_and_rare_channels() -> None:
    feature_map = np.zeros((1, 3, 3, 4), np.float32)
    feature_map[0, 1, 1, :] = 2.0  # every channel fires in the middle
    feature_map[0, :, :, 0] += 1.0  # channel 0 fires everywhere
    spatial, channel = crow_spatial(feature_map), crow_channel(feature_map)
    assert spatial.shape == (1, 3, 3, 1) and channel.shape == (1, 4)
    assert spatial[0, 1, 1, 0] == spatial.max()
    assert channel[0, 0] < channel[0, 1]


def test_parts_are_centred_on_the_fitted_pictures_and_halves_split_the_classes() -> None:
    vectors, labels = _clusters()
    labels = np.repeat([0, 1, 2, 3], [3, 2, 3, 2]).astype(np.int64)
    build = centred_parts([(vectors, 1.0), (vectors[:, :4], 0.5)])
    everyone = np.arange(len(labels))
    built = build(everyone, everyone)
    np.testing.assert_allclose(np.linalg.norm(built, axis=1), 1.0, rtol=1e-5)
    assert built.shape == (10, 20)
    whole, halves = whole_and_halves(build, labels, splits=4)
    assert set(whole) == set(halves) == {1, 5, 10}
    assert all(0.0 <= value <= 1.0 for value in (*whole.values(), *halves.values()))
