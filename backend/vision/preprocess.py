"""Provides the picture preprocessing shared by uploads, search-by-image and evaluation.

Every picture goes through exactly this function before the network sees it, so stored
embeddings, query embeddings and the offline evaluation agree.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backend.media.imaging import flatten_onto_white, upright
from backend.vision.types import IMAGE_SIZE

#: The colour of the bars beside or above a picture that is not square.
WHITE: Final = (255, 255, 255)


def preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> NDArray[np.uint8]:
    """Turn a decoded picture into the network's input: the whole picture, letterboxed on white.

    Applies the EXIF orientation, composites transparency onto white, scales the longer side to
    ``size`` with an antialiased bicubic filter and centres the result on a white square.

    Why the whole picture and not the centred square: a centre crop cuts off what lies near the
    edges of wide or tall pictures (a car seen side-on, a standing person), and retrieval over
    a labelled development set of drawings and photos scores clearly better with the whole
    picture (see ``docs/vision-quality.md``). White, because the catalogue's cut-outs already
    stand on white once their transparency is flattened, so the bars read as more background.

    Args:
        image: A Pillow image in any mode; it is not modified.
        size: Side of the output square.

    Returns:
        A C-contiguous uint8 array of shape ``(size, size, 3)`` in RGB order.
    """
    rgb = flatten_onto_white(upright(image))
    width, height = rgb.size
    scale = size / max(width, height)
    inner = (max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale))))
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(rgb.resize(inner, Image.Resampling.BICUBIC),
                 ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return np.ascontiguousarray(np.asarray(canvas, dtype=np.uint8))
