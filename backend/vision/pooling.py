"""Provides the pooling that turns the network's feature maps into an image descriptor.

The descriptor (pipeline revision 5) has two parts, each pooled with a generalised mean (GeM,
``p = 3``), square-rooted and L2-normalised on its own:

- the **head part**: the first :data:`HEAD_CHANNELS` channels of the last feature map
  (7 x 7 x 1280), what the classifier sees;
- the **mid part**: the output of the last but one stage of blocks (7 x 7 x 192), which keeps
  more of the shape and parts of what is drawn.

Why each step, measured on the development set (``tests/data/vision-devset``) on random halves
of its classes, centred on the other half's mean (``docs/vision-quality.md``):

- GeM rather than the classifier's average leans towards where a feature fires strongly, so an
  object on a plain background is not diluted by it (P@5 0.663 -> 0.678).
- The mid part, given half the weight of the head part in the cosine, adds what the head lost
  (0.678 -> 0.689); earlier stages (14 x 14) and giving it more weight did worse.
- The square root (power normalisation) damps the few channels that fire hard on every
  picture, so the cosine listens to more of them (0.689 -> 0.693).
- The embedding stays 1280 wide (the width stored on both engines and indexed): the head part
  gives up its last 192 channels to make room. Which 192 go made no measurable difference
  (the first, the last or the least active ones: within 0.4 points), so it is a fixed slice,
  with nothing to ship.

:func:`describe` returns the two unit parts side by side (what the shipped mean is fitted on);
:func:`combine_parts` weighs them into the unit embedding once they are centred
(:mod:`backend.vision.centring`).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from backend.vision.model import MID_CHANNELS
from backend.vision.types import EMBEDDING_DIM

#: The exponent of the generalised mean (1 is the average, infinity the maximum).
GEM_POWER: Final = 3.0
#: The power applied to each pooled value before normalising (0.5: signed square root; the
#: pooled values are never negative).
DESCRIPTOR_POWER: Final = 0.5
#: Channels of the last feature map kept: the embedding's first part.
HEAD_CHANNELS: Final = EMBEDDING_DIM - MID_CHANNELS
#: The mid part's weight in the cosine of two embeddings, the head part's being 1.
MID_WEIGHT: Final = 0.5
#: Where each part lies in a descriptor, and its weight.
PARTS: Final = ((slice(0, HEAD_CHANNELS), 1.0), (slice(HEAD_CHANNELS, EMBEDDING_DIM), MID_WEIGHT))
# Keeps the root defined for an all-zero map (the features are ReLU6 outputs, never negative).
_FLOOR: Final = 1e-6


def gem_pool(feature_map: NDArray[np.float32], power: float = GEM_POWER) -> NDArray[np.float32]:
    """Return the generalised mean over the spatial positions of each channel.

    Negative activations (the mid map is a residual sum, not a ReLU output) count as zero.

    Args:
        feature_map: float32 ``[N, H, W, C]`` activations.
        power: The exponent ``p`` of ``(mean(x ** p)) ** (1 / p)``; must be positive.

    Returns:
        float32 ``[N, C]``, not normalised.

    Raises:
        ValueError: ``feature_map`` is not 4-D or ``power`` is not positive.
    """
    if feature_map.ndim != 4:
        raise ValueError(f"expected a [N, H, W, C] feature map, got shape {feature_map.shape}")
    if power <= 0:
        raise ValueError(f"the GeM power must be positive, got {power}")
    clipped = np.maximum(feature_map, np.float32(_FLOOR), dtype=np.float32)
    if power == 3.0:
        # The product's power: two multiplications and a cube root take half the time of
        # np.power's general path (about 4 ms less per batch of 32 pictures).
        powered = clipped * clipped
        powered *= clipped
        pooled: NDArray[np.float32] = np.cbrt(powered.mean(axis=(1, 2), dtype=np.float32))
        return pooled
    means = np.power(clipped, np.float32(power)).mean(axis=(1, 2), dtype=np.float32)
    pooled = np.power(means, np.float32(1.0 / power)).astype(np.float32, copy=False)
    return pooled


def describe(
    feature_map: NDArray[np.float32], mid_map: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Return the uncentred descriptor: the unit head part and the unit mid part, side by side.

    Args:
        feature_map: float32 ``[N, H, W, 1280]``, the network's last feature map.
        mid_map: float32 ``[N, H', W', 192]``, the last but one stage's output.

    Returns:
        float32 ``[N, EMBEDDING_DIM]``; each part has unit norm (the whole has norm sqrt 2).

    Raises:
        ValueError: A map is not 4-D or has the wrong number of channels.
    """
    if feature_map.shape[-1:] != (EMBEDDING_DIM,) or mid_map.shape[-1:] != (MID_CHANNELS,):
        raise ValueError(
            f"expected maps of {EMBEDDING_DIM} and {MID_CHANNELS} channels,"
            f" got {feature_map.shape} and {mid_map.shape}"
        )
    head = gem_pool(feature_map[..., :HEAD_CHANNELS])
    mid = gem_pool(mid_map)
    rooted = [np.power(part, np.float32(DESCRIPTOR_POWER)) for part in (head, mid)]
    return np.concatenate([normalise_rows(part) for part in rooted], axis=1)


def combine_parts(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return unit embeddings from descriptors whose parts may have any length.

    Each part is normalised, scaled by the square root of its weight and the whole normalised
    again, so the cosine of two embeddings is the weighted mean of their parts' cosines.
    A part that is all zeros stays zero.
    """
    scaled = [normalise_rows(rows[:, span]) * np.float32(np.sqrt(weight)) for span, weight in PARTS]
    return normalise_rows(np.concatenate(scaled, axis=1))


def normalise_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return ``matrix`` with every row scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: NDArray[np.float32] = (matrix / np.maximum(norms, np.float32(1e-12))).astype(
        np.float32, copy=False
    )
    return result
