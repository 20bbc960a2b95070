"""Provides :class:`KeyedLocks`: asyncio locks created on demand per key and dropped when idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyedLocks:
    """One asyncio lock per key (an upload id, a picture hash), forgotten when nobody holds it.

    Several keys are always taken in sorted order, so two holders of overlapping key sets
    cannot deadlock.
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: dict[Hashable, int] = {}

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Hold the locks of ``keys`` for the ``with`` block."""
        ordered = sorted(set(keys))
        taken: list[str] = []
        try:
            for key in ordered:
                lock = self._locks.setdefault(key, asyncio.Lock())
                self._users[key] = self._users.get(key, 0) + 1
                try:
                    await lock.acquire()
                except BaseException:
                    self._release_user(key)
                    raise
                taken.append(key)
            yield
        finally:
            for key in reversed(taken):
                self._locks[key].release()
                self._release_user(key)

    def _release_user(self, key: Hashable) -> None:
        remaining = self._users[key] - 1
        if remaining:
            self._users[key] = remaining
        else:
            # Nobody holds or waits for it: forget it so the table does not grow without bound.
            del self._users[key]
            del self._locks[key]

    def __len__(self) -> int:
        """How many keys are held or waited for."""
        return len(self._locks)
