"""Provides the account and session messages: create, log in, resume, log out, password, end."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from protocol.messages.base import Event, Message, Reply, Request

Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class UserInfo(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Who a user is, as others may see it."""

    id: int
    username: str
    is_admin: bool = False
    created_at: float = 0.0


class CreateAccount(Request):
    """Create an account; the reply does not log in."""

    username: Username
    password: Password


class AccountCreated(Reply):
    """The new account."""

    user: UserInfo


class Login(Request):
    """Log in with a password; the connection is authenticated by the reply."""

    username: Username
    password: Password


class LoggedIn(Reply):
    """A fresh session: keep ``token`` to resume after a reconnect or in a later run."""

    token: str
    user: UserInfo
    expires_at: float


class Resume(Request):
    """Authenticate this connection with a session token from an earlier login."""

    token: Token


class Resumed(Reply):
    """The session is valid and now bound to this connection."""

    user: UserInfo
    expires_at: float


class Logout(Request):
    """Revoke this connection's session."""


class WhoAmI(Request):
    """Ask which user this connection is authenticated as."""


class Me(Reply):
    """The authenticated user."""

    user: UserInfo


class ChangePassword(Request):
    """Change the password; every session of the user is revoked and a new one issued."""

    old_password: Password
    new_password: Password


class SessionEndReason(enum.StrEnum):
    """Why the server ended a session while a connection was logged in with it."""

    #: The session was logged out, on another connection that shared it.
    LOGGED_OUT = "logged_out"
    #: The user's password was changed (every session but the changing connection's ends).
    PASSWORD_CHANGED = "password_changed"
    #: The session's idle or absolute lifetime ran out.
    EXPIRED = "expired"
    #: An administrator ended it (e.g. took away the user's admin role).
    REVOKED = "revoked"


class SessionEnded(Event):
    """The session this connection was logged in with has ended: the connection is logged out.

    It is the last event of that session: the server has dropped the connection's subscriptions
    and sends nothing more about it. The connection stays open; its token no longer resumes, and
    requests that need a login answer ``unauthenticated`` until the next login.
    """

    reason: SessionEndReason


MESSAGES: tuple[type[Message], ...] = (
    CreateAccount,
    AccountCreated,
    Login,
    LoggedIn,
    Resume,
    Resumed,
    Logout,
    WhoAmI,
    Me,
    ChangePassword,
    SessionEnded,
)
