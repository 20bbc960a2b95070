"""Provides the account and session messages: create, log in, resume, log out, password."""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol.messages.base import Message, Reply, Request

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
)
