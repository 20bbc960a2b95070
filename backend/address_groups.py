"""Provides :class:`AddressGroups`: connections counted per client address and in all.

The edge bounds what one address may hold (handshakes in progress, connections not logged in)
and what all may hold together; when everything is taken, a newcomer may take the oldest place of
the busiest address. Both bounds read the same two orders kept here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

H = TypeVar("H", bound=Hashable)
V = TypeVar("V")


class AddressGroups(Generic[H, V]):
    """Entries ``handle -> value`` grouped by address key, oldest first in each group and in all.

    The key is whatever :func:`~backend.addresses.address_key` made of the peer's address; a
    handle is anything hashable naming one connection.
    """

    def __init__(self) -> None:
        self._all: OrderedDict[H, tuple[str, V]] = OrderedDict()
        self._by_key: dict[str, OrderedDict[H, V]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, handle: object) -> bool:
        return handle in self._all

    def count(self, key: str) -> int:
        """How many entries ``key`` has."""
        return len(self._by_key.get(key, ()))

    def get(self, handle: H) -> V | None:
        """``handle``'s value, or ``None`` if it has no entry."""
        entry = self._all.get(handle)
        return entry[1] if entry is not None else None

    def oldest(self) -> V:
        """The value of the oldest entry of all (raises ``StopIteration`` when empty)."""
        return next(iter(self._all.values()))[1]

    def oldest_of(self, key: str) -> V | None:
        """The value of ``key``'s oldest entry, or ``None`` if it has none."""
        group = self._by_key.get(key)
        return next(iter(group.values())) if group else None

    def add(self, handle: H, key: str, value: V) -> None:
        """Count ``handle`` under ``key`` as the newest entry."""
        self._all[handle] = (key, value)
        self._by_key.setdefault(key, OrderedDict())[handle] = value

    def pop(self, handle: H) -> V | None:
        """Remove ``handle``'s entry and return its value (``None`` if it had none)."""
        entry = self._all.pop(handle, None)
        if entry is None:
            return None
        key, value = entry
        group = self._by_key[key]
        del group[handle]
        if not group:
            del self._by_key[key]
        return value

    def busiest_oldest(self, more_than: int) -> tuple[H, V] | None:
        """The oldest entry of the address with the most entries, if it has more than
        ``more_than`` (a newcomer's count once admitted); else ``None``."""
        busiest = max(self._by_key.values(), key=len, default=None)
        if busiest is None or len(busiest) <= more_than:
            return None
        return next(iter(busiest.items()))
