"""Provides what the account service asks of storage: users and sessions, as typed records.

Two repositories over the same database, one per table: :class:`AccountRepository` (users) and
:class:`SessionRepository` (login sessions). Usernames are stored with a comparison key
(:func:`~backend.accounts.service.username_key`), unique across users; sessions by the SHA-256
hash of their token, which itself is never stored. Times are epoch seconds.

The implementations (``sqlite_repository``, ``postgres_repository``) give the same answers; the
contract suite ``tests/contract/test_accounts_repository.py`` holds them to that.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol


class UsernameTaken(Exception):
    """Another user already has the username key (raised on both engines alike)."""

    def __init__(self, username_key: str) -> None:
        super().__init__(f"username key {username_key!r} is taken")
        self.username_key = username_key


@dataclass(frozen=True)
class UserRecord:
    """A stored user."""

    id: int
    #: As shown (NFKC form); the key it is unique by is not needed once the user is found.
    username: str
    is_admin: bool
    created_at: float
    #: The encoded Argon2id hash; kept out of ``repr`` so a logged record never carries it.
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class NewSession:
    """A session to store: its ``last_seen_at`` starts at ``created_at``."""

    token_hash: bytes
    user_id: int
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class SessionRecord:
    """A stored session with the user it belongs to, as a resumed session needs it."""

    token_hash: bytes
    user_id: int
    username: str
    is_admin: bool
    created_at: float
    last_seen_at: float
    #: The absolute expiry; the idle expiry is ``last_seen_at`` plus the policy's idle time.
    expires_at: float


class AccountRepository(Protocol):
    """The users table."""

    async def create(
        self, username: str, username_key: str, password_hash: str, now: float
    ) -> UserRecord:
        """Store a new user (not an admin) created at ``now``.

        Raises:
            UsernameTaken: a user with ``username_key`` exists, however the two raced.
        """

    async def by_key(self, username_key: str) -> UserRecord | None:
        """The user whose username has this comparison key, if any."""

    async def by_id(self, user_id: int) -> UserRecord | None:
        """The user with this id, if any."""

    async def change_password(self, user_id: int, password_hash: str, session: NewSession) -> None:
        """Set the user's password hash, delete all their sessions and store ``session``.

        One transaction: the password never changes without the fresh session, nor leaves an
        old session behind. The change is dated ``session.created_at``.
        """

    async def set_admin(self, user_id: int, is_admin: bool) -> None:
        """Grant or take away the admin role."""

    async def count(self) -> int:
        """How many users there are."""


class SessionRepository(Protocol):
    """The sessions table, keyed by token hash."""

    async def create(self, session: NewSession) -> None:
        """Store a new session of an existing user."""

    async def find(self, token_hash: bytes) -> SessionRecord | None:
        """The session with this token hash and its user, expired or not, if it is stored."""

    async def touch(self, token_hash: bytes, now: float) -> None:
        """Record that the session was used at ``now`` (never moving ``last_seen_at`` back)."""

    async def delete(self, token_hashes: Collection[bytes]) -> None:
        """Delete these sessions (those not stored are ignored)."""

    async def delete_of_user(self, user_id: int) -> None:
        """Delete every session of the user (a revocation)."""

    async def stored(self, token_hashes: Collection[bytes]) -> set[bytes]:
        """Which of these sessions are still stored (another process may have deleted some)."""

    async def delete_expired(self, now: float, idle_expiry: float) -> int:
        """Delete the sessions past their absolute expiry, or unused for ``idle_expiry``
        seconds, at ``now``; return how many went.
        """

    async def count_of_user(self, user_id: int) -> int:
        """How many sessions the user has stored."""

    async def surplus_of_user(self, user_id: int, keep: int) -> list[bytes]:
        """The token hashes of the user's sessions but the ``keep`` used last (newest first)."""
