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
        # A queued older status may give way to a newer one in the same state (the next
        # reconnect attempt's countdown), never to another state: a drop and the reconnect
        # that follows can both be queued while the app is busy (at start-up, say), and the
        # drop must still be shown and heard (the cart and inbox refresh on the way back up).
        return (
            isinstance(message, ConnectionChanged)
            and message.session is self.session
            and message.status.state is self.status.state
        )


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
