"""Provides :class:`RunningRequests`: the requests running at once, per client address, per user
and server-wide.

A request runs on after its connection closes (a retry finds its reply in the replay cache), so
a connection's own bound (``max_in_flight`` requests) holds only while it is open. An address
could send 16 slow requests (searches by picture, uploads' processing, listings), reset,
reconnect and do it again: with 256 connections per address that was 4,096 requests per
address and no bound at all when cycling, all queued ahead of everyone else's. Here a request
is counted from the moment the transport takes it until its task ends, whatever ends it (reply
sent, error, cancelled at shutdown), whether or not its connection is still there. Past a
bound a new request is refused at once with ``rate_limited`` and a retry hint, not queued.

The address is keyed as every edge limit is (:func:`~backend.addresses.address_key`: an IPv4
address, an IPv6 /64); the user bound catches one account spread over many addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from backend.addresses import address_key
from protocol.errors import RateLimited

K = TypeVar("K")

#: Seconds a refused client is told to wait: requests mostly end within milliseconds to
#: seconds, and the client library resends a ``rate_limited`` request after a wait this short.
RETRY_AFTER = 1.0


@dataclass(eq=False)
class Ticket:
    """One admitted request's place; :meth:`release` gives it back (once; again: nothing)."""

    _owner: RunningRequests | None
    #: The address key and the user (``None`` before login) the place was counted under.
    key: str
    user_id: int | None

    def release(self) -> None:
        """Give the place back, if not done already."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._give_back(self)


class RunningRequests:
    """Counts of requests running, per address key, per user and in all, each with a bound.

    Args:
        per_address: Requests one client address (key) may have running.
        per_user: Requests one user may have running, from all addresses together.
        total: Requests the server may have running.
    """

    def __init__(self, *, per_address: int, per_user: int, total: int) -> None:
        self.per_address = per_address
        self.per_user = per_user
        self.total = total
        self._count = 0
        # Only keys with requests running are kept, so an address or user gone leaves nothing.
        self._by_key: dict[str, int] = {}
        self._by_user: dict[int, int] = {}
        #: Requests refused, by the bound that refused them.
        self.refused: dict[str, int] = {"address": 0, "user": 0, "server": 0}

    @property
    def count(self) -> int:
        """How many requests are running."""
        return self._count

    def count_from(self, address: str) -> int:
        """How many requests ``address``'s key has running."""
        return self._by_key.get(address_key(address), 0)

    def count_of(self, user_id: int) -> int:
        """How many requests ``user_id`` has running."""
        return self._by_user.get(user_id, 0)

    def admit(self, address: str, user_id: int | None) -> Ticket:
        """Count a new request from ``address`` (sent as ``user_id``, ``None`` before login).

        Returns:
            Its place, to :meth:`Ticket.release` once the request has ended.

        Raises:
            RateLimited: The address, the user or the server has as many requests running as
                it may; nothing is counted.
        """
        key = address_key(address)
        if self._by_key.get(key, 0) >= self.per_address:
            raise self._refusal("address", "from your address")
        if user_id is not None and self._by_user.get(user_id, 0) >= self.per_user:
            raise self._refusal("user", "for your account")
        if self._count >= self.total:
            raise self._refusal("server", "on the server")
        self._count += 1
        self._by_key[key] = self._by_key.get(key, 0) + 1
        if user_id is not None:
            self._by_user[user_id] = self._by_user.get(user_id, 0) + 1
        return Ticket(self, key, user_id)

    def _refusal(self, bound: str, whose: str) -> RateLimited:
        self.refused[bound] += 1
        return RateLimited(
            f"Too many requests running {whose}; try again shortly",
            retry_after=RETRY_AFTER,
            details={"bound": bound},
        )

    def _give_back(self, ticket: Ticket) -> None:
        self._count -= 1
        _decrement(self._by_key, ticket.key)
        if ticket.user_id is not None:
            _decrement(self._by_user, ticket.user_id)


def _decrement(counts: dict[K, int], key: K) -> None:
    """Take one from ``counts[key]``, dropping the entry at zero."""
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
