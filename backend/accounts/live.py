"""Provides the session facts shared between server instances, and their delivery.

A session ended by logout, a password change or an administrator on one instance must end at
once on every instance where a connection is logged in with it. Another instance does not hold
the same sessions in memory, so a user-wide ending is shared as the user's id (and the session
kept, after a password change), and each instance ends the matching sessions it holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.eventbus import EventBus, Fact
from protocol.messages.accounts import SessionEndReason

if TYPE_CHECKING:
    from backend.accounts.service import AccountService


class SessionsEndedFact(Fact, frozen=True, kw_only=True):
    """These sessions ended (their rows are gone)."""

    token_hashes: list[bytes]
    reason: SessionEndReason


class UserSessionsEndedFact(Fact, frozen=True, kw_only=True):
    """Every session of a user ended but ``keep`` (the fresh one after a password change)."""

    user_id: int
    reason: SessionEndReason
    keep: bytes | None = None


def listen(bus: EventBus, accounts: AccountService) -> None:
    """End here the sessions other instances ended (connections told, memory forgotten)."""
    bus.on(
        SessionsEndedFact,
        lambda fact: accounts.forget_sessions(fact.token_hashes, fact.reason),
    )
    bus.on(
        UserSessionsEndedFact,
        lambda fact: accounts.forget_user_sessions(fact.user_id, fact.reason, keep=fact.keep),
    )
