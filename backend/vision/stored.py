"""Provides the stored forms of an embedding that both storage engines share.

Vectors are kept as float16: SQLite as a little-endian blob, PostgreSQL as pgvector's
``halfvec``, which is sent the values :func:`half_precision` rounded as numpy rounds the blob's,
so both engines hold the very same numbers. Tag suggestions are a msgpack list of
``[tag, probability]`` pairs on both, read back with an item's tags by :func:`item_suggestions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from backend.vision.repository import ItemSuggestions, Suggestion

_suggestions_encoder = msgspec.msgpack.Encoder()
_suggestions_decoder = msgspec.msgpack.Decoder(list[tuple[str, float]])


def half_precision(vector: NDArray[np.floating]) -> NDArray[np.float32]:
    """``vector`` rounded to float16 (what is stored), as float32 (exactly)."""
    rounded: NDArray[np.float32] = np.asarray(vector, dtype=np.float16).astype(np.float32)
    return rounded


def encode_suggestions(suggestions: Sequence[Suggestion]) -> bytes:
    """The stored form of tag suggestions."""
    return _suggestions_encoder.encode([(s.tag, s.probability) for s in suggestions])


def decode_suggestions(blob: bytes) -> tuple[Suggestion, ...]:
    """Tag suggestions from their stored form (empty for an empty blob)."""
    if not blob:
        return ()
    pairs = _suggestions_decoder.decode(blob)
    return tuple(Suggestion(tag, probability) for tag, probability in pairs)


def item_suggestions(
    owner_id: int, suggestions: bytes | None, tags: Iterable[str]
) -> ItemSuggestions:
    """An item's :class:`ItemSuggestions` from its stored columns.

    Args:
        suggestions: The stored form of its picture's suggestions; ``None`` (no embedding row
            yet) reads as none.
    """
    return ItemSuggestions(
        owner_id=owner_id,
        suggestions=decode_suggestions(suggestions or b""),
        tags=frozenset(tags),
    )
