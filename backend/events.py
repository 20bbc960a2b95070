"""Provides the event hub: connections subscribe to topics and domain services publish events.

The hub also ends the live side of sessions: when a session ends (:meth:`EventHub.end_sessions`,
told by the account service) every connection logged in with it loses its subscriptions, hears
:class:`~protocol.messages.accounts.SessionEnded` and is logged out; and before any event is
queued or sent the connection's session is checked again, so none reaches a session that ended.

The hub reaches this process's connections only. Publishers also hand the domain fact behind
their events to :meth:`EventHub.share`, which gives it to the :mod:`event bus <backend.eventbus>`
for the other instances of the shop; each applies its own connections' visibility rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from backend.auth import END_MESSAGES, Principal
from backend.eventbus import Fact
from protocol.messages.accounts import SessionEnded, SessionEndReason
from protocol.messages.base import Event

if TYPE_CHECKING:
    from backend.connection import Connection

#: Decides, per receiving connection, whether it may see an event (e.g. private items).
Audience = Callable[["Connection"], bool]
#: A session's principal as it stands now (its role may have changed), ``None`` once it ended:
#: :meth:`Authenticator.current <backend.auth.Authenticator.current>`.
SessionCheck = Callable[[Principal], Principal | None]


class EventHub:
    """Routes server events to the connections subscribed to a topic.

    Topics are plain strings chosen by the domains, e.g. ``"catalogue"``, ``"item:42"`` or
    ``"user:7"``. Delivery never blocks the publisher: each connection has a bounded outbox.
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Connection]] = defaultdict(set)
        self._connections: set[Connection] = set()
        self._check: SessionCheck | None = None
        self._share: Callable[[Fact], None] | None = None
        self._watchers: defaultdict[str, list[Callable[[], None]]] = defaultdict(list)

    def share_with(self, share: Callable[[Fact], None]) -> None:
        """Hand the facts given to :meth:`share` to ``share`` (the event bus's publish)."""
        self._share = share

    def share(self, fact: Fact) -> None:
        """Tell the other server instances of ``fact``, once delivered here (no-op alone)."""
        if self._share is not None:
            self._share(fact)

    def attach(self, connection: Connection) -> None:
        """Know an open connection, so it can be told when its session ends."""
        self._connections.add(connection)

    def check_sessions(self, check: SessionCheck) -> None:
        """Check every receiver's session with ``check`` before an event is queued or sent."""
        self._check = check

    def watch(self, topic: str, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` on every event published on ``topic``, whoever hears it.

        For this process's own state that follows a topic (e.g. a cache of listings emptied
        whenever the catalogue changes); events from other instances arrive here too.
        """
        self._watchers[topic].append(watcher)

    def subscribe(self, connection: Connection, topic: str) -> None:
        """Deliver events of ``topic`` to ``connection`` until it unsubscribes or closes.

        Nothing for a connection that is not attached (closed, or never opened): a request
        outlives its connection, and one that subscribed after the close would leave the
        connection held here, and sent events, for as long as the server runs.
        """
        if connection not in self._connections:
            return
        self._subscribers[topic].add(connection)
        connection.topics.add(topic)

    def has_subscribers(self, topic: str) -> bool:
        """Whether any connection here is subscribed to ``topic``."""
        return bool(self._subscribers.get(topic))

    def unsubscribe(self, connection: Connection, topic: str) -> None:
        """Stop delivering ``topic`` to ``connection``."""
        subscribers = self._subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(connection)
            if not subscribers:
                del self._subscribers[topic]
        connection.topics.discard(topic)

    def unsubscribe_all(self, connection: Connection) -> None:
        """Stop delivering every topic to ``connection``."""
        for topic in list(connection.topics):
            self.unsubscribe(connection, topic)

    def drop(self, connection: Connection) -> None:
        """Forget a closed connection everywhere."""
        self.unsubscribe_all(connection)
        self._connections.discard(connection)

    def end_sessions(self, token_hashes: Collection[bytes], reason: SessionEndReason) -> None:
        """End these sessions on every connection logged in with one of them.

        Each such connection loses all its subscriptions, hears :class:`SessionEnded` (after
        which nothing queued for the session is sent) and is logged out; it stays open.
        """
        for connection in list(self._connections):
            principal = connection.principal
            if principal is not None and principal.token_hash in token_hashes:
                self._end(connection, reason)

    def _end(self, connection: Connection, reason: SessionEndReason) -> None:
        self.unsubscribe_all(connection)
        connection.end_session(SessionEnded(reason=reason), END_MESSAGES[reason])

    def admits(self, connection: Connection) -> bool:
        """Whether ``connection`` may be sent a session's events now: its session is still on.

        A session found over is ended on the connection here (if the account service has not
        done so already); a role changed since the connection's last request is taken on.
        A connection that is not logged in passes: the publishers' audiences decide for it.
        """
        principal = connection.principal
        if principal is None or self._check is None:
            return True
        current = self._check(principal)
        if current is None:
            if connection.principal is not None:
                self._end(connection, SessionEndReason.REVOKED)
            return False
        if current is not principal:
            connection.principal = current
        return True

    def publish(self, topic: str, event: Event, audience: Audience | None = None) -> int:
        """Queue ``event`` for every subscriber of ``topic`` allowed by ``audience``.

        Returns:
            How many connections it was queued for.
        """
        for watcher in self._watchers.get(topic, ()):
            watcher()
        delivered = 0
        for connection in list(self._subscribers.get(topic, ())):
            if self.admits(connection) and (audience is None or audience(connection)):
                connection.push_event(event)
                delivered += 1
        return delivered
