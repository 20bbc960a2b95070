"""Tests for the generalised-mean pooling of the network's last feature map."""

from __future__ import annotations

import numpy as np
import pytest

from backend.vision.pooling import gem_pool


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
