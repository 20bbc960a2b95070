"""Provides :class:`IdPages` and :func:`keyset_batch`: newest-first batches keyed by row ids.

For listings whose rows only ever get larger ids as time goes on (a user's notices, favourites,
orders, sales): a batch continues strictly below the id of the last row sent, behind a signed
cursor bound to the listing and the user (see :mod:`backend.catalogue.cursors`), so nothing
added meanwhile shifts it and no cursor opens another user's listing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from backend.catalogue.cursors import CursorSigner, Position, cursor_binding
from protocol.errors import BadRequest


class _Keyed(Protocol):
    @property
    def id(self) -> int: ...


K = TypeVar("K", bound=_Keyed)
R = TypeVar("R")

#: Reads the secret the cursors are signed with (from the data dir or the database).
SecretSource = Callable[[], Awaitable[bytes]]
#: Reads up to ``limit`` rows with ids below a position (``None``: from the newest), newest first.
FetchBelow = Callable[[int | None, int], Awaitable[Sequence[R]]]


async def keyset_batch(
    signer: CursorSigner,
    binding: bytes,
    fetch: FetchBelow[R],
    key: Callable[[R], int],
    *,
    size: int,
    cursor: str | None,
) -> tuple[list[R], str | None]:
    """One batch of ``size`` rows of the listing ``binding`` describes, and the next cursor.

    Args:
        signer: Seals and opens the listing's cursors.
        binding: The listing and its viewer (see :func:`cursor_binding`).
        fetch: Reads rows below a position, newest first.
        key: A row's position (its id): the next batch continues below the last row's.
        size: Rows in the batch (see :func:`batch_size`).
        cursor: Where the batch continues; ``None`` for the first.

    Returns:
        The rows and the cursor of the next batch (``None`` after the last).

    Raises:
        BadRequest: the cursor is not one of this listing's for this viewer.
    """
    below = None if cursor is None else _last_id(signer.open(cursor, binding))
    # One row more than asked says whether another batch exists, so the last batch carries
    # no cursor and the client never asks for an empty one.
    rows = list(await fetch(below, size + 1))
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    return rows, signer.seal(binding, [key(rows[-1])])


def batch_size(limit: int | None, *, default: int, maximum: int) -> int:
    """The rows a batch holds: ``default`` when the client does not say, else ``limit``.

    Raises:
        BadRequest: ``limit`` is above ``maximum``.
    """
    if limit is None:
        return default
    if limit > maximum:
        raise BadRequest(f"A batch has at most {maximum} rows")
    return limit


class IdPages(Generic[K]):
    """Batches of one kind of listing (``scope``), for any user.

    Args:
        scope: The listing's cursor scope, e.g. ``"inbox.notices"``.
        secret: Reads the cursor secret, once, before the first batch.
        batch_default: Rows per batch when the client does not say.
        batch_max: The most rows a client may ask for in one batch.
    """

    def __init__(
        self, scope: str, secret: SecretSource, *, batch_default: int, batch_max: int
    ) -> None:
        self._scope = scope
        self._secret = secret
        self._signer: CursorSigner | None = None
        self._signer_lock = asyncio.Lock()
        self._batch_default = batch_default
        self._batch_max = batch_max

    async def batch(
        self, user_id: int, fetch: FetchBelow[K], *, limit: int | None, cursor: str | None
    ) -> tuple[list[K], str | None]:
        """One batch of the user's rows and the cursor of the next (``None`` after the last).

        Raises:
            BadRequest: ``limit`` is above the maximum, or the cursor is not one of this
                listing's for this user.
        """
        size = batch_size(limit, default=self._batch_default, maximum=self._batch_max)
        signer = await self._cursor_signer()
        binding = cursor_binding(self._scope, user_id)
        return await keyset_batch(signer, binding, fetch, _row_id, size=size, cursor=cursor)

    async def _cursor_signer(self) -> CursorSigner:
        if self._signer is None:
            async with self._signer_lock:
                if self._signer is None:
                    self._signer = CursorSigner(await self._secret())
        return self._signer


def _row_id(row: _Keyed) -> int:
    return row.id


def _last_id(position: Position) -> int:
    # The MAC vouches for the bytes, not for the shape: check it anyway, cheaply.
    if len(position) != 1 or not isinstance(position[0], int) or isinstance(position[0], bool):
        raise BadRequest("The cursor is not valid for this listing; start it again")
    return position[0]
