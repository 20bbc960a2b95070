"""Provides the event hub: connections subscribe to topics and domain services publish events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.messages.base import Event

if TYPE_CHECKING:
    from backend.connection import Connection

#: Decides, per receiving connection, whether it may see an event (e.g. private items).
Audience = Callable[["Connection"], bool]


class EventHub:
    """Routes server events to the connections subscribed to a topic.

    Topics are plain strings chosen by the domains, e.g. ``"catalogue"``, ``"item:42"`` or
    ``"user:7"``. Delivery never blocks the publisher: each connection has a bounded outbox.
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Connection]] = defaultdict(set)

    def subscribe(self, connection: Connection, topic: str) -> None:
        """Deliver events of ``topic`` to ``connection`` until it unsubscribes or closes."""
        self._subscribers[topic].add(connection)
        connection.topics.add(topic)

    def unsubscribe(self, connection: Connection, topic: str) -> None:
        """Stop delivering ``topic`` to ``connection``."""
        subscribers = self._subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(connection)
            if not subscribers:
                del self._subscribers[topic]
        connection.topics.discard(topic)

    def drop(self, connection: Connection) -> None:
        """Forget a closed connection everywhere."""
        for topic in list(connection.topics):
            self.unsubscribe(connection, topic)

    def publish(self, topic: str, event: Event, audience: Audience | None = None) -> int:
        """Queue ``event`` for every subscriber of ``topic`` allowed by ``audience``.

        Returns:
            How many connections it was queued for.
        """
        delivered = 0
        for connection in list(self._subscribers.get(topic, ())):
            if audience is None or audience(connection):
                connection.push_event(event)
                delivered += 1
        return delivered
