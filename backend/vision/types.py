"""Provides the small value types shared by the embedder, the worker and their callers."""

from __future__ import annotations

from typing import Final, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

#: Side of the square RGB picture the network takes.
IMAGE_SIZE: Final = 224
#: Length of an embedding (EfficientNet-Lite0's pooled features).
EMBEDDING_DIM: Final = 1280
#: Number of ImageNet classes the network scores.
NUM_CLASSES: Final = 1000


class EmbedBatch(NamedTuple):
    """The network's answer for a batch of N pictures."""

    #: float32 [N, 1280], each row L2-normalised (cosine similarity is a dot product).
    embeddings: NDArray[np.float32]
    #: float32 [N, 1000], softmax over the ImageNet classes.
    probabilities: NDArray[np.float32]


class EmbedResult(NamedTuple):
    """The network's answer for one picture."""

    #: float32 [1280], L2-normalised.
    embedding: NDArray[np.float32]
    #: float32 [1000], softmax over the ImageNet classes.
    probabilities: NDArray[np.float32]


class BatchEmbedder(Protocol):
    """Anything that turns a uint8 [N, 224, 224, 3] batch into an :class:`EmbedBatch`."""

    @property
    def model_version(self) -> str:
        """The version string stored next to every embedding this embedder makes."""
        ...

    def embed(self, batch: NDArray[np.uint8]) -> EmbedBatch:
        """Embed a batch of preprocessed pictures."""
        ...


def check_batch(batch: object) -> NDArray[np.uint8]:
    """Return ``batch`` if it is a uint8 [N, 224, 224, 3] array, else raise ``ValueError``."""
    if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8:
        raise ValueError("expected a uint8 numpy array")
    if batch.ndim != 4 or batch.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"expected shape [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3], got {batch.shape}")
    return batch


def check_image(image: object) -> NDArray[np.uint8]:
    """Return ``image`` if it is a uint8 [224, 224, 3] array, else raise ``ValueError``."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("expected a uint8 numpy array")
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"expected shape [{IMAGE_SIZE}, {IMAGE_SIZE}, 3], got {image.shape}")
    return image
