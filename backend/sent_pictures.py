"""Provides :class:`SentPictures`: which pictures one connection has been sent, bounded.

With :attr:`~protocol.messages.catalogue.PictureMode.UNSENT` a listing inlines only the pictures
its connection has not been sent yet, so a cold client still gets a batch in one round trip and
a client scrolling back, re-sorting or reopening an item gets hashes only. The record is a hint,
never a permission: forgetting an entry costs a picture sent twice; a client that lost a picture
it was sent asks for it again by item id (with its access checked).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

#: Pictures remembered per connection: about 40 batches of 24 (some 120 KB per connection).
SENT_PICTURES: Final = 1024


class SentPictures:
    """The content hashes most recently sent on one connection, at most ``limit``."""

    def __init__(self, limit: int = SENT_PICTURES) -> None:
        self.limit = limit
        self._hashes: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._hashes

    def add(self, sha256: str) -> None:
        """Record ``sha256`` as sent (the least recently sent are forgotten past the limit)."""
        hashes = self._hashes
        if sha256 in hashes:
            hashes.move_to_end(sha256)
            return
        hashes[sha256] = None
        if len(hashes) > self.limit:
            hashes.popitem(last=False)
