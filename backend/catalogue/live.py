"""Provides publishing of item events, with visibility applied per receiving connection.

Topics: ``"catalogue"`` (every open gallery), ``"item:<id>"`` (clients looking at or holding the
item). Private items are announced to their owner only; when an item turns private, everyone else
is told it was removed.
"""

from __future__ import annotations

from backend.connection import Connection
from backend.events import Audience, EventHub
from protocol.messages.live import ItemAdded, ItemChanged, ItemRemoved

CATALOGUE_TOPIC = "catalogue"


def item_topic(item_id: int) -> str:
    """The topic of one item's watchers."""
    return f"item:{item_id}"


def _can_see(owner_id: int, public: bool) -> Audience:
    def audience(connection: Connection) -> bool:
        principal = connection.principal
        if principal is None:
            return False
        return public or principal.user_id == owner_id or principal.is_admin

    return audience


def _cannot_see(owner_id: int, public: bool) -> Audience:
    can = _can_see(owner_id, public)
    return lambda connection: connection.principal is not None and not can(connection)


def publish_added(events: EventHub, *, item_id: int, owner_id: int, public: bool) -> None:
    """Announce a new item to those who may see it."""
    events.publish(
        CATALOGUE_TOPIC, ItemAdded(item_id=item_id, owner_id=owner_id), _can_see(owner_id, public)
    )


def publish_changed(
    events: EventHub,
    *,
    item_id: int,
    owner_id: int,
    title: str,
    price_cents: int,
    stock: int,
    public: bool,
) -> None:
    """Announce a change; those who can no longer see the item are told it was removed."""
    changed = ItemChanged(
        item_id=item_id, title=title, price_cents=price_cents, stock=stock, public=public
    )
    removed = ItemRemoved(item_id=item_id)
    for topic in (CATALOGUE_TOPIC, item_topic(item_id)):
        events.publish(topic, changed, _can_see(owner_id, public))
        if not public:
            events.publish(topic, removed, _cannot_see(owner_id, public))


def publish_removed(events: EventHub, *, item_id: int) -> None:
    """Announce a deletion to everyone watching the catalogue or the item."""
    removed = ItemRemoved(item_id=item_id)
    seen: set[int] = set()

    def once(connection: Connection) -> bool:
        # A connection on both topics hears about the deletion once.
        if connection.id in seen:
            return False
        seen.add(connection.id)
        return connection.principal is not None

    for topic in (CATALOGUE_TOPIC, item_topic(item_id)):
        events.publish(topic, removed, once)

