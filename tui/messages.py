"""Provides the small Textual messages the session and the screens send to one another."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from protocol.client import ConnectionStatus, Session
from protocol.messages.base import Event


@dataclass
class ConnectionChanged(Message):
    """The session's connection state changed (connected, reconnecting, offline, ...)."""

    session: Session
    status: ConnectionStatus

    def can_replace(self, message: Message) -> bool:
        # Only the newest state matters; a queued older one can be dropped.
        return isinstance(message, ConnectionChanged) and message.session is self.session


@dataclass
class ServerEventReceived(Message):
    """The server pushed an event (an item was added, changed or removed)."""

    session: Session
    event: Event


@dataclass
class TokenChanged(Message):
    """The session token changed: a login, a logout, or a session that ended on the server."""

    session: Session
    token: str | None


@dataclass
class LoggedIn(Message):
    """The person is logged in (by password, a new account, or a resumed session)."""

    session: Session
    resumed: bool = False


__all__ = ["ConnectionChanged", "LoggedIn", "ServerEventReceived", "TokenChanged"]
