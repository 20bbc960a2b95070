"""Provides the request handlers for accounts and sessions."""

from __future__ import annotations

from backend.accounts.service import Principal
from backend.connection import Connection
from backend.dispatch import Dispatcher
from backend.services import Services
from protocol.messages.accounts import (
    AccountCreated,
    ChangePassword,
    CreateAccount,
    LoggedIn,
    Login,
    Logout,
    Me,
    Resume,
    Resumed,
    WhoAmI,
)
from protocol.messages.base import Ok, Reply


def register(dispatcher: Dispatcher, services: Services) -> None:
    """Register the account handlers."""
    accounts = services.accounts
    events = services.events

    async def bind_session(connection: Connection, reply: Reply) -> None:
        # Runs for fresh and replayed replies alike, so a login retried after a drop still
        # authenticates the new connection.
        if isinstance(reply, LoggedIn):
            connection.principal, _ = await accounts.resume(reply.token)

    # private: these frames carry a password (a digest of one kept in shared storage would be a
    # fast offline guessing oracle) and their replies a session token, so their retries are
    # deduplicated by the instance that ran them only, never through the database.
    @dispatcher.route(CreateAccount, auth=False, private=True)
    async def create_account(connection: Connection, request: CreateAccount) -> Reply:
        user = await accounts.create_account(request.username, request.password, connection.address)
        return AccountCreated(id=request.id, user=user)

    @dispatcher.route(Login, auth=False, private=True, after=bind_session)
    async def login(connection: Connection, request: Login) -> Reply:
        token, principal, expires_at = await accounts.login(
            request.username, request.password, connection.address
        )
        return LoggedIn(id=request.id, token=token, user=principal.info(), expires_at=expires_at)

    @dispatcher.route(Resume, auth=False, replayable=False)
    async def resume(connection: Connection, request: Resume) -> Reply:
        principal, expires_at = await accounts.resume(request.token)
        connection.principal = principal
        return Resumed(id=request.id, user=principal.info(), expires_at=expires_at)

    # No session check: a logout retried after a drop (session already revoked) still succeeds.
    @dispatcher.route(Logout, auth=False)
    async def logout(connection: Connection, request: Logout) -> Reply:
        # Logged out before the session is revoked: the session's other connections are told it
        # ended, this one asked for it and hears Ok.
        principal, connection.principal = connection.principal, None
        connection.ended = None
        # Its subscriptions were made as the user it no longer is.
        events.unsubscribe_all(connection)
        if principal is not None:
            await accounts.logout(principal)
        return Ok(id=request.id)

    @dispatcher.route(WhoAmI, replayable=False)
    async def whoami(connection: Connection, request: WhoAmI) -> Reply:
        return Me(id=request.id, user=connection.require_user().info())

    @dispatcher.route(ChangePassword, private=True, after=bind_session)
    async def change_password(connection: Connection, request: ChangePassword) -> Reply:
        def carry_on(principal: Principal) -> None:
            # This connection moves to the new session, subscriptions and all; the user's other
            # connections are told their session ended.
            connection.principal = principal

        token, principal, expires_at = await accounts.change_password(
            connection.require_user(),
            request.old_password,
            request.new_password,
            connection.address,
            rebind=carry_on,
        )
        return LoggedIn(id=request.id, token=token, user=principal.info(), expires_at=expires_at)
