"""Provides failed-login throttling per account and per client address."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.errors import RateLimited


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins in a sliding window and locks the key out for a while past a limit.

    Keys are ``("account", name)`` and ``("address", ip)``; both are checked before the password
    is even hashed, so a brute-force run costs the attacker time, not the server CPU.
    """

    def __init__(
        self,
        *,
        max_per_account: int,
        max_per_address: int,
        window: float,
        lockout: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._limits = {"account": max_per_account, "address": max_per_address}
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[tuple[str, str], _Failures] = {}

    def check(self, account: str, address: str) -> None:
        """Raise :class:`RateLimited` if either key is locked out."""
        now = self._clock()
        for key in (("account", account), ("address", address)):
            entry = self._failures.get(key)
            if entry is not None and entry.locked_until > now:
                retry = round(entry.locked_until - now, 1)
                raise RateLimited(
                    f"Too many failed logins; try again in {retry:g} seconds", retry_after=retry
                )

    def failed(self, account: str, address: str) -> None:
        """Record one failed login for both keys."""
        now = self._clock()
        if len(self._failures) >= self._max_keys:
            self._prune(now)
        for kind, value in (("account", account), ("address", address)):
            entry = self._failures.setdefault((kind, value), _Failures())
            entry.times.append(now)
            while entry.times and entry.times[0] < now - self._window:
                entry.times.popleft()
            if len(entry.times) >= self._limits[kind]:
                entry.locked_until = now + self._lockout
                entry.times.clear()

    def succeeded(self, account: str) -> None:
        """Forget the account's failures after a successful login (the address keeps its)."""
        self._failures.pop(("account", account), None)

    def _prune(self, now: float) -> None:
        stale = [
            key
            for key, entry in self._failures.items()
            if entry.locked_until <= now
            and (not entry.times or entry.times[-1] < now - self._window)
        ]
        for key in stale:
            del self._failures[key]
