"""Provides the Keras port of EfficientNet-Lite0, built from the numpy state dict of the checkpoint.

The network takes RGB pictures of ``INPUT_SIZE`` x ``INPUT_SIZE`` with values 0..255 (float32) and
returns three outputs: the last feature map (7 x 7 x 1280, after the head's ReLU6), the 1000
ImageNet logits (computed, as trained, from the global average of that map) and the output of
the last but one stage of blocks (7 x 7 x 192, before the last block and the head). The embedder
pools both maps into the embedding (:mod:`backend.vision.pooling`). Normalisation
``(x - 127) / 128`` is part of the graph so every runtime (Keras, TFLite) sees the same numbers.

TensorFlow/Keras are imported inside :func:`build_keras_model` so that importing this module is
cheap; only building a model loads TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import keras

INPUT_SIZE: Final = 224
FEATURE_DIM: Final = 1280
NUM_CLASSES: Final = 1000
STEM_CHANNELS: Final = 32
BN_EPSILON: Final = 1e-3
# Lite variants use ReLU6 so that the network quantises well.
RELU_MAX: Final = 6.0
# The checkpoint's normalisation: pixels 0..255 map to roughly [-1, 1].
INPUT_MEAN: Final = 127.0
INPUT_STD: Final = 128.0
#: Side of the last feature map (the input downsampled 32 times).
FEATURE_MAP_SIZE: Final = INPUT_SIZE // 32
#: Output names of the model, in order (the logits stay second, as before the mid map came).
OUTPUT_NAMES: Final = ("feature_map", "logits", "mid_map")


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One stage of MBConv blocks, as in the EfficientNet-Lite0 definition."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    channels_in: int
    channels_out: int


#: The seven stages of EfficientNet-Lite0 (no squeeze-excitation in the Lite variants).
STAGES: Final = (
    StageSpec(1, 3, 1, 1, 32, 16),
    StageSpec(2, 3, 2, 6, 16, 24),
    StageSpec(2, 5, 2, 6, 24, 40),
    StageSpec(3, 3, 2, 6, 40, 80),
    StageSpec(3, 5, 1, 6, 80, 112),
    StageSpec(4, 5, 2, 6, 112, 192),
    StageSpec(1, 3, 1, 6, 192, 320),
)
#: Channels of the last but one stage's output (the model's third output).
MID_CHANNELS: Final = STAGES[-2].channels_out


class StateDictError(ValueError):
    """Raised when a state dict lacks a tensor the architecture needs or has a wrong shape."""


class _Weights:
    """Hands out state-dict tensors converted to Keras layouts and checks all were used."""

    def __init__(self, state: Mapping[str, NDArray[Any]]) -> None:
        self._state = state
        self._used: set[str] = set()

    def take(self, name: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
        """Return tensor ``name`` (PyTorch layout) after checking its shape."""
        if name not in self._state:
            raise StateDictError(f"state dict has no {name}")
        array = np.asarray(self._state[name], dtype=np.float32)
        if array.shape != shape:
            raise StateDictError(f"{name} has shape {array.shape}, expected {shape}")
        self._used.add(name)
        return array

    def conv(self, name: str, out_ch: int, in_ch: int, kernel: int) -> NDArray[np.float32]:
        """Return a conv kernel, (O, I, H, W) in PyTorch -> (H, W, I, O) in Keras."""
        return self.take(name, (out_ch, in_ch, kernel, kernel)).transpose(2, 3, 1, 0)

    def depthwise(self, name: str, channels: int, kernel: int) -> NDArray[np.float32]:
        """Return a depthwise kernel, (C, 1, H, W) in PyTorch -> (H, W, C, 1) in Keras."""
        return self.take(name, (channels, 1, kernel, kernel)).transpose(2, 3, 0, 1)

    def batch_norm(self, prefix: str, channels: int) -> list[NDArray[np.float32]]:
        """Return [gamma, beta, moving mean, moving variance] for Keras BatchNormalization."""
        self._used.add(f"{prefix}.num_batches_tracked")  # training bookkeeping, not a weight
        return [
            self.take(f"{prefix}.{part}", (channels,))
            for part in ("weight", "bias", "running_mean", "running_var")
        ]

    def unused(self) -> list[str]:
        """Return the names of tensors nobody asked for (a sign of a wrong architecture)."""
        return sorted(set(self._state) - self._used)


def build_keras_model(state: Mapping[str, NDArray[Any]]) -> keras.Model:
    """Build EfficientNet-Lite0 in Keras with the checkpoint's weights.

    Args:
        state: The PyTorch state dict as numpy arrays (see :mod:`backend.vision.weights`).

    Returns:
        A Keras model mapping float32 ``[N, 224, 224, 3]`` pixels in 0..255 to
        ``(feature_map [N, 7, 7, 1280], logits [N, 1000], mid_map [N, 7, 7, 192])``.

    Raises:
        StateDictError: A tensor is missing, has the wrong shape, or is left over.
    """
    import keras

    weights = _Weights(state)
    # Padding is Keras "same", which pads the extra row/column at the bottom/right like
    # TensorFlow. That is what the checkpoint was trained with: it was converted from Google's
    # TF release and its PyTorch code pads with Conv2dStaticSamePadding (TF-style). Symmetric
    # padding also classifies plausibly but shifts features at stride-2 layers.
    # Keras layer names must not start with an underscore (SavedModel export rejects them).
    assignments: list[tuple[keras.layers.Layer, list[NDArray[np.float32]]]] = []

    def conv(x: Any, name: str, src: str, out_ch: int, kernel: int, stride: int = 1) -> Any:
        layer = keras.layers.Conv2D(
            out_ch, kernel, strides=stride, padding="same", use_bias=False, name=name
        )
        assignments.append((layer, [weights.conv(src, out_ch, int(x.shape[-1]), kernel)]))
        return layer(x)

    def depthwise(x: Any, name: str, src: str, kernel: int, stride: int) -> Any:
        layer = keras.layers.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False, name=name
        )
        assignments.append((layer, [weights.depthwise(src, int(x.shape[-1]), kernel)]))
        return layer(x)

    def batch_norm(x: Any, name: str, src: str, relu: bool) -> Any:
        layer = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)
        assignments.append((layer, weights.batch_norm(src, int(x.shape[-1]))))
        x = layer(x)
        return keras.layers.ReLU(max_value=RELU_MAX, name=f"{name}_relu6")(x) if relu else x

    pixels = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="normalise")(
        pixels
    )
    x = conv(x, "stem_conv", "_conv_stem.weight", STEM_CHANNELS, 3, stride=2)
    x = batch_norm(x, "stem_bn", "_bn0", relu=True)

    index = 0
    mid_map: Any = None
    for stage_number, stage in enumerate(STAGES):
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            channels_in = stage.channels_in if repeat == 0 else stage.channels_out
            src = f"_blocks.{index}"
            name = f"block{index}"
            shortcut = x
            if stage.expand != 1:
                x = conv(x, f"{name}_expand", f"{src}._expand_conv.weight",
                         channels_in * stage.expand, 1)
                x = batch_norm(x, f"{name}_expand_bn", f"{src}._bn0", relu=True)
            x = depthwise(x, f"{name}_dw", f"{src}._depthwise_conv.weight", stage.kernel, stride)
            x = batch_norm(x, f"{name}_dw_bn", f"{src}._bn1", relu=True)
            x = conv(x, f"{name}_project", f"{src}._project_conv.weight", stage.channels_out, 1)
            x = batch_norm(x, f"{name}_project_bn", f"{src}._bn2", relu=False)
            if stride == 1 and channels_in == stage.channels_out:
                x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
            index += 1
        if stage_number == len(STAGES) - 2:
            mid_map = x  # the last but one stage's output, a second map for the embedding

    x = conv(x, "head_conv", "_conv_head.weight", FEATURE_DIM, 1)
    feature_map = batch_norm(x, "head_bn", "_bn1", relu=True)
    # The map itself is an output too: retrieval pools it differently from the classifier
    # (generalised mean), and pooling outside the graph keeps the int8 model's ops simple.
    features = keras.layers.GlobalAveragePooling2D(name="features")(feature_map)
    dense = keras.layers.Dense(NUM_CLASSES, name="logits")
    logits = dense(features)
    assignments.append(
        (
            dense,
            [
                weights.take("_fc.weight", (NUM_CLASSES, FEATURE_DIM)).T,
                weights.take("_fc.bias", (NUM_CLASSES,)),
            ],
        )
    )

    leftover = weights.unused()
    if leftover:
        raise StateDictError(f"state dict tensors not used by the architecture: {leftover[:5]}")
    model = keras.Model(pixels, [feature_map, logits, mid_map], name="efficientnet_lite0")
    for layer, values in assignments:
        layer.set_weights(values)
    return model
