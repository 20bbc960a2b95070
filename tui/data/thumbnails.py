"""Provides :class:`PictureCache`: decoded pictures in memory, the least recently used dropped."""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from PIL import Image


def decode_picture(data: bytes, max_side: int | None = None) -> Image.Image:
    """Decode WebP/PNG/JPEG bytes into an RGB(A) picture, shrunk to ``max_side`` if given.

    CPU work: call it in a thread (see :meth:`PictureCache.load`).
    """
    with Image.open(io.BytesIO(data)) as source:
        if max_side:
            source.draft("RGB", (max_side, max_side))  # JPEG decodes at a fraction of the size
        picture = source.convert("RGBA" if "A" in source.getbands() else "RGB")
    if max_side and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return picture


class PictureCache:
    """A bounded LRU of decoded pictures, keyed by e.g. the item id.

    Args:
        capacity: pictures kept; the least recently used beyond that are dropped.
        max_side: pictures are shrunk to this many pixels on their longest side when decoded,
            which bounds the memory per entry.
    """

    def __init__(self, capacity: int = 256, max_side: int | None = 160) -> None:
        self.capacity = capacity
        self.max_side = max_side
        self._pictures: OrderedDict[Hashable, Image.Image] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pictures)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._pictures

    def get(self, key: Hashable) -> Image.Image | None:
        """The cached picture for ``key``, now the most recently used."""
        picture = self._pictures.get(key)
        if picture is not None:
            self._pictures.move_to_end(key)
        return picture

    def put(self, key: Hashable, picture: Image.Image) -> None:
        """Keep ``picture``; drops the least recently used beyond the capacity."""
        self._pictures[key] = picture
        self._pictures.move_to_end(key)
        while len(self._pictures) > self.capacity:
            self._pictures.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        """Forget ``key``."""
        self._pictures.pop(key, None)

    def decode_many(
        self, pictures: Sequence[tuple[Hashable, bytes]]
    ) -> list[tuple[Hashable, Image.Image]]:
        """Decode the pictures not cached yet (blocking: call it in a thread, then :meth:`put`
        each); undecodable ones are left out.

        One thread hop for a screenful, where :meth:`load` takes one per picture: on a busy
        machine every hop waits its turn for the loop.
        """
        decoded: list[tuple[Hashable, Image.Image]] = []
        for key, data in pictures:
            if key in self._pictures:
                continue
            try:
                decoded.append((key, decode_picture(data, self.max_side)))
            except Exception:  # an undecodable thumbnail stays a placeholder
                continue
        return decoded

    async def load_many(self, pictures: Sequence[tuple[Hashable, bytes]]) -> None:
        """Decode the pictures not cached yet in one thread and keep them."""
        for key, picture in await asyncio.to_thread(self.decode_many, list(pictures)):
            self.put(key, picture)

    async def load(self, key: Hashable, data: bytes) -> Image.Image:
        """The picture for ``key``, decoding ``data`` in a thread when it is not cached."""
        picture = self.get(key)
        if picture is None:
            picture = await asyncio.to_thread(decode_picture, data, self.max_side)
            self.put(key, picture)
        return picture


__all__ = ["PictureCache", "decode_picture"]
