"""Provides the fact that keeps every instance's picture searches in step.

Each instance holds the shop's picture searches in memory (:class:`~backend.alerts.pictures.
PictureMatcher`). When one is saved or removed, the instance that did it shares the search's id;
every other instance reads that search again (:meth:`AlertMatcher.reload_picture`) and holds or
drops it. The item matching itself needs no fact: it runs once, on the instance that wrote the
item.
"""

from __future__ import annotations

from backend.eventbus import Fact


class PictureSearchesChanged(Fact, frozen=True, kw_only=True):
    """A saved search was saved or removed: read it again (gone or not a picture: drop it)."""

    search_id: int
