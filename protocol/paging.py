"""Provides :func:`paginate`: one loop for every cursor-batched listing on the client side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: Fetches one batch: (wanted size or None for the server's default, cursor) -> (rows, next).
FetchBatch = Callable[[int | None, str | None], Awaitable[tuple[Sequence[T], str | None]]]


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
