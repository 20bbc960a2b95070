"""Tests for the pooling of the network's feature maps into the two-part descriptor."""

from __future__ import annotations

import numpy as np
import pytest

from backend.vision.pooling import (
    HEAD_CHANNELS,
    MID_WEIGHT,
    PARTS,
    combine_parts,
    describe,
    gem_pool,
)
from backend.vision.types import EMBEDDING_DIM


def _map(values: list[float]) -> np.ndarray:
    """A 1 x 1 x len(values) x 2 map: channel 0 holds ``values``, channel 1 is constant 2."""
    feature_map = np.full((1, 1, len(values), 2), 2.0, np.float32)
    feature_map[0, 0, :, 0] = values
    return feature_map


def test_power_one_is_the_average_and_a_constant_channel_stays_put() -> None:
    pooled = gem_pool(_map([0.0, 1.0, 2.0, 5.0]), power=1.0)
    np.testing.assert_allclose(pooled, [[2.0, 2.0]], rtol=1e-5)


def test_power_three_leans_towards_the_strong_activations() -> None:
    values = [0.0, 0.0, 0.0, 6.0]
    pooled = gem_pool(_map(values))
    assert pooled.shape == (1, 2) and pooled.dtype == np.float32
    # (6^3 / 4)^(1/3) = 3.78: between the mean (1.5) and the maximum (6).
    assert pooled[0, 0] == pytest.approx((216 / 4) ** (1 / 3), rel=1e-4)
    assert pooled[0, 1] == pytest.approx(2.0, rel=1e-5)


def test_an_all_zero_map_pools_to_nearly_zero_not_nan() -> None:
    pooled = gem_pool(np.zeros((2, 7, 7, 1280), np.float32))
    assert np.isfinite(pooled).all() and (pooled < 1e-5).all()


def test_bad_shapes_and_powers_are_refused() -> None:
    with pytest.raises(ValueError, match="feature map"):
        gem_pool(np.zeros((2, 1280), np.float32))
    with pytest.raises(ValueError, match="positive"):
        gem_pool(np.zeros((1, 7, 7, 4), np.float32), power=0.0)


def _maps(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    head = rng.uniform(0, 6, (3, 7, 7, 1280)).astype(np.float32)
    mid = rng.normal(0, 2, (3, 7, 7, 192)).astype(np.float32)
    return head, mid


def test_the_descriptor_is_two_unit_parts_of_the_embedding_width() -> None:
    head, mid = _maps(0)
    rows = describe(head, mid)
    assert rows.shape == (3, EMBEDDING_DIM) and rows.dtype == np.float32
    for span, _ in PARTS:
        np.testing.assert_allclose(np.linalg.norm(rows[:, span], axis=1), 1.0, rtol=1e-5)
    # The head part is the square root of GeM of the map's first channels.
    expected = np.sqrt(gem_pool(head)[:, :HEAD_CHANNELS])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(rows[:, :HEAD_CHANNELS], expected, rtol=1e-5)


def test_negative_mid_activations_count_as_zero() -> None:
    head, mid = _maps(1)
    np.testing.assert_allclose(describe(head, mid), describe(head, np.maximum(mid, 0)),
                               atol=1e-6)


def test_maps_of_the_wrong_width_are_refused() -> None:
    head, mid = _maps(2)
    with pytest.raises(ValueError, match="channels"):
        describe(head, head)
    with pytest.raises(ValueError, match="channels"):
        describe(mid, mid)


def test_combining_weighs_each_part_and_normalises() -> None:
    rows = np.zeros((2, EMBEDDING_DIM), np.float32)
    rows[0, 0] = rows[0, HEAD_CHANNELS] = 3.0  # both parts along one axis
    rows[1, 0] = rows[1, HEAD_CHANNELS + 1] = 2.0  # same head, different mid
    first, second = combine_parts(rows)
    np.testing.assert_allclose([np.linalg.norm(first), np.linalg.norm(second)], 1.0, rtol=1e-6)
    # The heads agree (cosine 1), the mids are orthogonal (0): weighted mean 1 / (1 + weight).
    assert float(first @ second) == pytest.approx(1 / (1 + MID_WEIGHT), rel=1e-5)
