"""Provides what the request path knows of sessions: the principal and the authenticator.

The transport, dispatch, the event hub and connections depend on this module only; the account
service (:class:`~backend.accounts.service.AccountService`) is the one implementation of
:class:`Authenticator`, wired in by :class:`~backend.server.PixmartServer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocol.messages.accounts import SessionEndReason, UserInfo

#: What a request that needs a login hears on a connection whose session ended this way.
END_MESSAGES: dict[SessionEndReason, str] = {
    SessionEndReason.LOGGED_OUT: "The session was logged out elsewhere; please log in again",
    SessionEndReason.PASSWORD_CHANGED: "Your password was changed; please log in again",
    SessionEndReason.EXPIRED: "Your session has expired; please log in again",
    SessionEndReason.REVOKED: "Your session was ended by an administrator; please log in again",
}


@dataclass(frozen=True)
class Principal:
    """An authenticated user bound to one session."""

    user_id: int
    username: str
    is_admin: bool
    token_hash: bytes

    def info(self) -> UserInfo:
        """The public view of this user."""
        return UserInfo(id=self.user_id, username=self.username, is_admin=self.is_admin)


class Authenticator(Protocol):
    """Checks that a connection's session is still on, as requests and events are handled."""

    async def authenticate(self, principal: Principal) -> Principal:
        """The session's principal as it stands now (its role may have changed).

        Called before every request that needs a login: sessions can be revoked or expire
        while the connection stays open.

        Raises:
            Unauthenticated: The session has ended.
        """

    def current(self, principal: Principal) -> Principal | None:
        """The session's principal as it stands now, or ``None`` once the session has ended.

        Cheap and synchronous, for the event delivery path (the hub's session check).
        """
