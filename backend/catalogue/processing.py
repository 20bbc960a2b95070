"""Provides the CPU work on an uploaded picture, in worker threads and bounded in parallel.

Validation, the metadata-stripped copy and the derivatives all run off the event loop, in one
thread per picture: validation's decode is the one the derivatives are made from (see
:func:`~backend.media.validate.inspect_and_decode`). The work is in C that releases the GIL
(libjpeg, libvips, libwebp), so pictures are processed on every core while the event loop keeps
serving. A semaphore caps how many pictures are decoded at once: a 50-megapixel decode holds
hundreds of megabytes, and more parallel decodes than cores only add memory, not speed.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from backend.catalogue.errors import protocol_error
from backend.media.derivatives import Derivatives, decode_for_model, decode_size, derive
from backend.media.errors import MediaError
from backend.media.sanitize import sanitized_original
from backend.media.validate import ImageInfo, MediaLimits, inspect_and_decode


@dataclass(frozen=True, slots=True)
class PreparedPicture:
    """An accepted picture with everything made from it.

    Attributes:
        info: What validation learned (format, upright size, orientation, byte size).
        clean: The original without metadata, served to everyone but the owner.
        derivatives: Thumbnail, preview and the vision pipeline's picture.
    """

    info: ImageInfo
    clean: bytes
    derivatives: Derivatives


def prepare_picture(path: Path, limits: MediaLimits) -> PreparedPicture:
    """Validate the file at ``path`` and make its clean copy and derivatives (blocking).

    Raises:
        MediaError: the file is refused; its message says why.
    """
    info, decoded = inspect_and_decode(path, limits, decode_size)
    derivatives = derive(decoded, info)
    del decoded  # the largest buffer of the lot: gone before the clean copy is made
    clean = sanitized_original(path.read_bytes(), info)
    return PreparedPicture(info=info, clean=clean, derivatives=derivatives)


class PictureProcessor:
    """Runs :func:`prepare_picture` in threads, a bounded number at a time."""

    def __init__(self, limits: MediaLimits, concurrency: int | None = None) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 1)

    async def prepare(self, path: Path) -> PreparedPicture:
        """Validate and process the file at ``path``.

        Raises:
            TooLarge, UnsupportedMedia: the picture is refused (protocol errors).
        """
        async with self._slots:
            try:
                # Looked up at each call, so a benchmark can run the old pipeline in its place.
                return await asyncio.to_thread(prepare_picture, path, self.limits)
            except MediaError as exc:
                raise protocol_error(exc) from None

    async def model_image(self, source: bytes | Path, info: ImageInfo) -> Image.Image:
        """Decode a stored original (its bytes or file) into the vision pipeline's picture."""
        async with self._slots:
            try:
                return await asyncio.to_thread(decode_for_model, source, info)
            except MediaError as exc:
                raise protocol_error(exc) from None
