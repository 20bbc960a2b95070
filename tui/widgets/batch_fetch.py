"""Provides :func:`fetch_next_batch`: one next-batch fetch of a list that loads batch by batch.

:class:`~tui.widgets.batch_table.BatchTable` and
:class:`~tui.widgets.catalogue_view.CatalogueView` share it: both keep a ``fetching`` flag for
their status line, tell a failure in words, and drop what a fetch brings when their list was
replaced (a reload) while it was on its way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from tui.context import ShopContext

E = TypeVar("E")


class BatchView(Protocol):
    """A widget that lists batches: a ``fetching`` flag, a status line and the shop context."""

    fetching: bool

    @property
    def pixmart(self) -> ShopContext:
        """The app, as what a widget may ask of it."""
        ...

    def _show_status(self) -> None: ...


async def fetch_next_batch(
    view: BatchView,
    fetch: Callable[[], Awaitable[list[E]]],
    current: Callable[[], bool],
) -> list[E] | None:
    """Run ``fetch`` for ``view``, with ``view.fetching`` set and shown while it runs.

    Args:
        fetch: fetches the next batch of the view's list and returns the entries it added.
        current: whether the list fetched for is still the view's (not replaced by a reload).

    Returns:
        The added entries, or ``None`` when the fetch failed (told to the person, the list stays
        as it was) or the list is no longer the view's (then nothing about it is shown).
    """
    view.fetching = True
    view._show_status()
    try:
        added = await fetch()
    except Exception as exc:  # told in words; the list stays as it was
        if current():
            view.pixmart.report_failure(exc)
        return None
    finally:
        if current():
            view.fetching = False
            view._show_status()
    return added if current() else None


__all__ = ["BatchView", "fetch_next_batch"]
