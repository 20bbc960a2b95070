"""Provides the login and sign-up limits that hold across every server instance of a shop.

:mod:`backend.accounts.throttle` counts in one process's memory: enough for one SQLite server,
not for N instances behind a balancer, where an attacker spreading guesses over the instances
would get N times the allowance. On PostgreSQL the same limits are also counted in the database
(:class:`~backend.accounts.postgres_throttle.PostgresEventCounter`), so they bound the shop as a
whole; the in-memory throttle stays in front of it, per process.

What stays per process, and why that is safe: the attempts *in progress* and the password-hashing
gate (:mod:`backend.accounts.hashing`) bound this process's CPU, which is per process by nature.

A login is checked against the shared counts before its password is checked, and counted only
once it has failed. Attempts still in progress are bounded per process by the in-memory
throttle (20 per address): counting them here as well would refuse people who log in together
from one address (an office, a NAT), with a wait as long as the window. So guesses sent at once
to N instances can overshoot a limit by at most what N processes let through in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from protocol.errors import RateLimited

LOGIN: Final = "login"
SIGNUP: Final = "signup"


class LimitReached(Exception):
    """A key of a :meth:`EventCounter.take` is full; nothing was counted."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"{key} is at its limit for {wait:.1f} s")
        self.key = key
        #: Seconds until the oldest event of the full key leaves the window.
        self.wait = wait


class EventCounter(Protocol):
    """Events counted per (scope, key) in a sliding window, shared by every instance."""

    async def take(self, scope: str, limits: Mapping[str, int], window: float) -> list[int]:
        """Count one event on every key of ``limits`` (key → events allowed per ``window``),
        all or none, atomically against every instance; return the events' ids.

        Raises:
            LimitReached: a key already has its limit of events in the window.
        """
        ...

    async def check(self, scope: str, limits: Mapping[str, int], window: float) -> None:
        """Count nothing; raise if a key of ``limits`` already has its limit in the window.

        Raises:
            LimitReached: a key is full.
        """
        ...

    async def give_back(self, ids: Sequence[int]) -> None:
        """Uncount events taken earlier (those already gone are ignored)."""
        ...

    async def clear(self, scope: str, key: str) -> None:
        """Forget every event of one key."""
        ...


@dataclass(frozen=True)
class SharedLimits:
    """The shop-wide limits: failed logins per account and address, sign-ups per address and
    in all. ``counter`` is ``None`` for a single server (the in-memory limits are the whole
    story there), and then every method does nothing.
    """

    counter: EventCounter | None
    max_failures_per_account: int
    max_failures_per_address: int
    failure_window: float
    max_accounts_per_address: int
    max_accounts_total: int
    account_window: float

    async def login_attempt(
        self, account: str, address: str, *, known: bool = False
    ) -> SharedAttempt:
        """Check the account's and the address's failed logins before a password check.

        Args:
            known: The address logged in to the account lately
                (:meth:`~backend.accounts.throttle.LoginThrottle.knows`): it is limited by its
                own count for the account, which failures from elsewhere do not fill.

        Raises:
            RateLimited: either key had its limit of failed attempts in the window.
        """
        own = f"known:{account}:{address}" if known else f"account:{account}"
        limits = {
            own: self.max_failures_per_account,
            f"address:{address}": self.max_failures_per_address,
        }
        if self.counter is not None:
            try:
                await self.counter.check(LOGIN, limits, self.failure_window)
            except LimitReached as exc:
                retry = round(max(exc.wait, 0.1), 1)
                raise RateLimited(
                    f"Too many failed logins; try again in {retry:g} seconds", retry_after=retry
                ) from None
        return SharedAttempt(self.counter, account, limits, self.failure_window, own)

    async def signup(self, address: str) -> SharedSlot:
        """Count one account creation on the address and on the shop.

        Raises:
            RateLimited: too many sign-ups from the address, or in all, lately.
        """
        if self.counter is None:
            return SharedSlot(None, [])
        limits = {f"address:{address}": self.max_accounts_per_address}
        limits["total"] = self.max_accounts_total
        try:
            ids = await self.counter.take(SIGNUP, limits, self.account_window)
        except LimitReached as exc:
            retry = math.ceil(max(exc.wait, 1.0))
            whose = "on this server" if exc.key == "total" else "from your address"
            raise RateLimited(
                f"Too many new accounts {whose} lately; try again in {_duration(retry)}",
                retry_after=float(retry),
            ) from None
        return SharedSlot(self.counter, ids)


class SharedAttempt:
    """One login attempt checked against the shared limits; settle it once it is decided."""

    def __init__(
        self,
        counter: EventCounter | None,
        account: str,
        limits: Mapping[str, int],
        window: float,
        own: str | None = None,
    ) -> None:
        self._counter = counter
        self._account = account
        self._limits = limits
        self._window = window
        #: The account's key the attempt counts on (the address's own count, if known).
        self._own = own or f"account:{account}"

    async def failed(self) -> None:
        """The password was wrong: count one failure on the account and the address."""
        if self._counter is None:
            return
        try:
            await self._counter.take(LOGIN, self._limits, self._window)
        except LimitReached:
            pass  # already full (attempts that were in progress together): refused next time

    async def succeeded(self) -> None:
        """The password was right: forget the account's failures (the address keeps its)."""
        if self._counter is not None:
            await self._counter.clear(LOGIN, f"account:{self._account}")
            if self._own != f"account:{self._account}":
                await self._counter.clear(LOGIN, self._own)


class SharedSlot:
    """One sign-up counted in the shared limits."""

    def __init__(self, counter: EventCounter | None, ids: list[int]) -> None:
        self._counter = counter
        self._ids = ids

    async def release(self) -> None:
        """No password was hashed for it (the server was too busy): uncount it."""
        if self._counter is not None:
            await self._counter.give_back(self._ids)


def _duration(seconds: int) -> str:
    """``"45 seconds"``, ``"12 minutes"``: how long to wait, in words."""
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
