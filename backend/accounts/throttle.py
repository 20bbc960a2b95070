"""Provides the account limits that run before any password work: failed logins and sign-ups.

* :class:`LoginThrottle` counts failed logins per account and per client address and locks a
  key out for a while past its limit. An attempt is reserved (:meth:`LoginThrottle.reserve`)
  before its password is checked and counts as a failure until it succeeds, so attempts sent
  at once cannot all pass the check before the first failure is recorded. An address that
  logged in to an account lately has its own count for that account: strangers who lock the
  account out from elsewhere do not lock out its owner where they usually log in.
* :class:`SignupLimiter` caps account creations per client address and server-wide in a
  sliding window.

Addresses are keyed by :func:`~backend.addresses.address_key`: an IPv6 client is limited by its
/64, the block a single subscriber usually holds, so it cannot dodge a limit by changing its
address.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from protocol.errors import RateLimited

#: A key failed logins are counted under: ("account", name), ("address", ip) or
#: ("known", name, ip), an address's own count for an account it logged in to.
_Key = tuple[str, ...]

#: Seconds an attempt refused for "too many attempts in progress" is told to wait: those in
#: progress settle within one password check, after which the key is locked or free again.
IN_PROGRESS_RETRY: Final = 1.0


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    #: Attempts reserved whose password check has not settled yet.
    pending: int = 0


class LoginAttempt:
    """One login attempt, reserved against both keys before its password is checked.

    Settle it exactly once: :meth:`failed` (also the right call when the check was cut short,
    e.g. the client dropped), :meth:`succeeded`, or :meth:`release` if no password work ran
    at all (the server was too busy to start it). Later calls do nothing.
    """

    def __init__(
        self, throttle: LoginThrottle, account: str, address: str, keys: tuple[_Key, _Key]
    ) -> None:
        self._throttle = throttle
        self.account = account
        self.address = address
        #: The account's key (its own, or the address's own count for it) and the address's.
        self.keys = keys
        self._open = True

    @property
    def known(self) -> bool:
        """Whether the address counts on its own for the account (it logged in to it lately)."""
        return self.keys[0][0] == "known"

    def failed(self) -> None:
        """Count the attempt as a failed login."""
        if self._settle():
            self._throttle._record_failure(self.keys)

    def succeeded(self) -> None:
        """The password was right: forget the account's failures (the address keeps its)."""
        if self._settle():
            self._throttle.succeeded(self.account, self.address)

    def release(self) -> None:
        """Give the reservation back without counting anything: no password was checked."""
        self._settle()

    def _settle(self) -> bool:
        if not self._open:
            return False
        self._open = False
        self._throttle._unreserve(self.keys)
        return True


class LoginThrottle:
    """Counts failed logins in a sliding window and locks the key out for a while past a limit.

    Keys are ``("account", name)`` and ``("address", ip)``. Both are checked before the password
    is even hashed, so a brute-force run costs the attacker time, not the server CPU. Attempts
    in progress count against the limit as if they had failed.

    From an address that logged in to the account within ``known_for`` seconds, the account's
    key is ``("known", name, ip)`` instead, with the account's limit: anyone failing from
    other addresses then cannot lock the owner out there, and a guesser sharing the owner's
    address meets the same limit as before. At most ``max_keys`` such pairs are remembered.
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
        known_for: float = 30 * 24 * 3600.0,
    ) -> None:
        self._limits = {"account": max_per_account, "known": max_per_account}
        self._limits["address"] = max_per_address
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._max_keys = max_keys
        self._known_for = known_for
        self._failures: dict[_Key, _Failures] = {}
        #: (account, address) pairs that logged in, and when last; oldest first.
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    def knows(self, account: str, address: str) -> bool:
        """Whether ``address`` logged in to ``account`` within ``known_for`` seconds."""
        since = self._known.get((account, address))
        return since is not None and since > self._clock() - self._known_for

    def keys(self, account: str, address: str) -> tuple[_Key, _Key]:
        """The keys an attempt on ``account`` from ``address`` is counted under."""
        own: _Key = (
            ("known", account, address)
            if self.knows(account, address)
            else (
                "account",
                account,
            )
        )
        return own, ("address", address)

    def check(self, account: str, address: str) -> None:
        """Raise :class:`RateLimited` if either key is locked out or has no attempt left."""
        now = self._clock()
        for key in self.keys(account, address):
            entry = self._failures.get(key)
            if entry is None:
                continue
            if entry.locked_until > now:
                retry = round(entry.locked_until - now, 1)
                raise RateLimited(
                    f"Too many failed logins; try again in {retry:g} seconds", retry_after=retry
                )
            self._forget_old(entry, now)
            if len(entry.times) + entry.pending >= self._limits[key[0]]:
                # Only attempts still in progress can get here (settled failures lock first).
                raise RateLimited(
                    "Too many login attempts in progress; try again in a second",
                    retry_after=IN_PROGRESS_RETRY,
                )

    def reserve(self, account: str, address: str) -> LoginAttempt:
        """Check both keys and reserve one attempt on each; settle the returned attempt.

        Check and reservation happen without a pause, so concurrent attempts see each other.

        Raises:
            RateLimited: a key is locked out, or its remaining attempts are all in progress.
        """
        self.check(account, address)
        if len(self._failures) >= self._max_keys:
            self._prune(self._clock())
        keys = self.keys(account, address)
        for key in keys:
            self._failures.setdefault(key, _Failures()).pending += 1
        return LoginAttempt(self, account, address, keys)

    def failed(self, account: str, address: str) -> None:
        """Record one failed login for both keys."""
        self._record_failure(self.keys(account, address))

    def _record_failure(self, keys: tuple[_Key, _Key]) -> None:
        now = self._clock()
        if len(self._failures) >= self._max_keys:
            self._prune(now)
        for key in keys:
            entry = self._failures.setdefault(key, _Failures())
            entry.times.append(now)
            self._forget_old(entry, now)
            if len(entry.times) >= self._limits[key[0]]:
                entry.locked_until = now + self._lockout
                entry.times.clear()

    def succeeded(self, account: str, address: str) -> None:
        """Forget the account's failures after a successful login (the address keeps its), and
        remember that ``address`` logged in to ``account``."""
        for key in (("account", account), ("known", account, address)):
            self._forget(key)
        self._known[(account, address)] = self._clock()
        self._known.move_to_end((account, address))
        while len(self._known) > self._max_keys:
            self._known.popitem(last=False)

    def _forget(self, key: _Key) -> None:
        entry = self._failures.get(key)
        if entry is None:
            return
        if entry.pending:
            # Other attempts are still in progress and will settle against this entry.
            entry.times.clear()
            entry.locked_until = 0.0
        else:
            del self._failures[key]

    def _unreserve(self, keys: tuple[_Key, _Key]) -> None:
        for key in keys:
            entry = self._failures.get(key)
            if entry is not None and entry.pending > 0:
                entry.pending -= 1

    def _forget_old(self, entry: _Failures, now: float) -> None:
        while entry.times and entry.times[0] < now - self._window:
            entry.times.popleft()

    def _prune(self, now: float) -> None:
        stale = [
            key
            for key, entry in self._failures.items()
            if entry.locked_until <= now
            and not entry.pending
            and (not entry.times or entry.times[-1] < now - self._window)
        ]
        for key in stale:
            del self._failures[key]


class _Window:
    """Event times inside a sliding window, at most ``limit`` of them."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0 if it fits now)."""
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        if not self.times:
            return self.period  # a limit of 0: never
        return self.times[0] + self.period - now


class SignupSlot:
    """One account creation, counted against its address and the server; release if unused."""

    def __init__(self, limiter: SignupLimiter, address: str, at: float) -> None:
        self._limiter = limiter
        self._address = address
        self._at = at
        self._open = True

    def release(self) -> None:
        """Give the slot back: no password was hashed for it (the server was too busy)."""
        if self._open:
            self._open = False
            self._limiter._give_back(self._address, self._at)


class SignupLimiter:
    """Caps account creations per client address and server-wide within a sliding window.

    Each creation costs an Argon2id hash and brings a new user with its own upload quota, so a
    client making accounts in bulk costs the server CPU and disk. Limits are taken before the
    hash; a slot is counted whatever the creation's outcome (a taken name still cost a hash).
    """

    def __init__(
        self,
        *,
        max_per_address: int,
        max_total: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._per_address = max_per_address
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._total = _Window(max_total, window)
        self._addresses: dict[str, _Window] = {}

    def reserve(self, address: str) -> SignupSlot:
        """Count one creation for ``address``; return its slot.

        Raises:
            RateLimited: the address, or the server as a whole, made too many accounts lately;
                ``retry_after`` says when the next one fits.
        """
        now = self._clock()
        if len(self._addresses) >= self._max_keys:
            self._prune(now)
        own = self._addresses.get(address) or _Window(self._per_address, self._window)
        for window, whose in ((own, "from your address"), (self._total, "on this server")):
            wait = window.wait(now)
            if wait > 0:
                retry = math.ceil(wait)
                raise RateLimited(
                    f"Too many new accounts {whose} lately; try again in {_duration(retry)}",
                    retry_after=float(retry),
                )
        self._addresses[address] = own
        own.times.append(now)
        self._total.times.append(now)
        return SignupSlot(self, address, now)

    def _give_back(self, address: str, at: float) -> None:
        for window in (self._addresses.get(address), self._total):
            if window is not None and at in window.times:
                window.times.remove(at)

    def _prune(self, now: float) -> None:
        stale = [
            address
            for address, window in self._addresses.items()
            if not window.times or window.times[-1] <= now - window.period
        ]
        for address in stale:
            del self._addresses[address]


def _duration(seconds: int) -> str:
    """``"45 seconds"``, ``"12 minutes"``: how long to wait, in words."""
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
