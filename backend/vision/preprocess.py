"""Provides the picture preprocessing shared by uploads, search-by-image and evaluation.

Every picture goes through exactly this function before the network sees it, so stored
embeddings, query embeddings and the offline evaluation agree.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backend.media.imaging import flatten_onto_white, upright
from backend.vision.types import IMAGE_SIZE


def preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> NDArray[np.uint8]:
    """Turn a decoded picture into the network's input.

    Applies the EXIF orientation, composites transparency onto white, scales the shorter side to
    ``size`` with an antialiased bicubic filter and takes the centred square.

    Args:
        image: A Pillow image in any mode; it is not modified.
        size: Side of the output square.

    Returns:
        A C-contiguous uint8 array of shape ``(size, size, 3)`` in RGB order.
    """
    rgb = flatten_onto_white(upright(image))
    width, height = rgb.size
    side = min(width, height)
    left = (width - side) / 2
    top = (height - side) / 2
    # Resizing the centred square box in one step equals "shorter side to size, then centre-crop"
    # and avoids an intermediate image.
    square = rgb.resize(
        (size, size),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
    )
    return np.ascontiguousarray(np.asarray(square, dtype=np.uint8))
