"""Provides cursor-batched listings on the client side: :func:`paginate` streams one,
:class:`BatchedList` holds one.

Every listing of the protocol (items, similar items, orders, sales) comes a batch at a time, each
batch naming the cursor of the next. A script walks through one with :func:`paginate`; a screen
keeps what it loaded in a :class:`BatchedList` and asks for the next batch only when it needs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: Fetches one batch: (wanted size or None for the server's default, cursor) -> (rows, next).
FetchBatch = Callable[[int | None, str | None], Awaitable[tuple[Sequence[T], str | None]]]

#: Fetches the batch after a cursor (``None`` for the first) -> (rows, next cursor).
FetchAfter = Callable[[str | None], Awaitable[tuple[Sequence[T], str | None]]]


async def paginate(
    fetch: FetchBatch[T], *, batch: int | None = None, max_items: int | None = None
) -> AsyncIterator[T]:
    """Yield the rows of a listing, asking for each next batch only when it is needed.

    Args:
        fetch: Gets one batch for a size and the previous batch's cursor.
        batch: Rows per batch (the server's default when ``None``).
        max_items: Stop after this many rows.
    """
    cursor: str | None = None
    sent = 0
    while True:
        wanted = batch if max_items is None else min(batch or max_items, max_items - sent)
        rows, cursor = await fetch(wanted, cursor)
        for row in rows:
            yield row
            sent += 1
            if max_items is not None and sent >= max_items:
                return
        if cursor is None:
            return


class BatchedList(Generic[T]):
    """The entries of one listing loaded so far, in the server's order, each kept once.

    A batch is added only when asked for, with the cursor of the previous one, so a connection
    drop in the middle (the session re-sends the request once it is back) neither skips nor
    repeats entries: an entry seen twice (a retried request, an item that moved) is kept once.

    Args:
        key: what makes two entries the same (e.g. an item's id).
    """

    def __init__(self, key: Callable[[T], Hashable]) -> None:
        self._key = key
        self._positions: dict[Hashable, int] = {}
        self.items: list[T] = []
        #: The cursor of the next batch; ``None`` before the first and after the last.
        self.cursor: str | None = None
        #: Whether a batch has arrived.
        self.started = False
        #: Batches received so far.
        self.batches = 0
        #: How many entries the whole listing has, when the server said.
        self.total: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def exhausted(self) -> bool:
        """Whether every batch has been fetched."""
        return self.started and self.cursor is None

    def index_of(self, key: Hashable) -> int | None:
        """Where the entry of ``key`` is in :attr:`items`, if loaded."""
        return self._positions.get(key)

    def get(self, key: Hashable) -> T | None:
        """The loaded entry of ``key``."""
        position = self._positions.get(key)
        return self.items[position] if position is not None else None

    async def load_next(self, fetch: FetchAfter[T]) -> list[T]:
        """Fetch the batch after :attr:`cursor` and return the entries it added (none once
        exhausted).

        Raises:
            PixmartError: the server's typed error (e.g. a cursor it no longer accepts).
        """
        if self.exhausted:
            return []
        rows, cursor = await fetch(self.cursor)
        return self.add_batch(rows, cursor)

    def add_batch(self, rows: Sequence[T], cursor: str | None, total: int | None = None) -> list[T]:
        """Append a batch's new entries and move the cursor on; returns the entries added."""
        if total is not None:
            self.total = total
        added: list[T] = []
        for entry in rows:
            key = self._key(entry)
            if key in self._positions:
                continue  # already here: a retried request, or an entry that moved
            self._positions[key] = len(self.items)
            self.items.append(entry)
            added.append(entry)
        self.cursor = cursor
        self.started = True
        self.batches += 1
        return added

    def prepend(self, entry: T) -> bool:
        """Put a new entry first (one made here since loading); ``False`` if already there."""
        key = self._key(entry)
        if key in self._positions:
            return False
        for other in self._positions:
            self._positions[other] += 1
        self._positions[key] = 0
        self.items.insert(0, entry)
        if self.total is not None:
            self.total += 1
        return True

    def replace(self, entry: T) -> int | None:
        """Put a fresher version of a loaded entry in place; returns its position, if loaded."""
        position = self._positions.get(self._key(entry))
        if position is not None:
            self.items[position] = entry
        return position

    def remove(self, key: Hashable) -> int | None:
        """Drop an entry (deleted, or no longer visible); returns where it was, if loaded."""
        position = self._positions.pop(key, None)
        if position is None:
            return None
        del self.items[position]
        for later in self.items[position:]:
            self._positions[self._key(later)] -= 1
        if self.total is not None:
            self.total = max(0, self.total - 1)
        return position


__all__ = ["BatchedList", "FetchAfter", "FetchBatch", "paginate"]
