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
    was_public: bool | None = None,
) -> None:
    """Announce a change to those who may see the item.

    Args:
        was_public: The visibility before the change, when the change may have altered it.
            If the item turned private, everyone else is told it was removed; nobody else hears
            anything about an item that was private already, not even that it changed.
    """
    changed = ItemChanged(
        item_id=item_id, title=title, price_cents=price_cents, stock=stock, public=public
    )
    removed = ItemRemoved(item_id=item_id)
    for topic in (CATALOGUE_TOPIC, item_topic(item_id)):
        events.publish(topic, changed, _can_see(owner_id, public))
        if was_public and not public:
            events.publish(topic, removed, _cannot_see(owner_id, public))


def publish_removed(
    events: EventHub, *, item_id: int, owner_id: int | None = None, public: bool = True
) -> None:
    """Announce a deletion to everyone watching the catalogue or the item.

    Args:
        owner_id: The item's owner; with ``public=False`` only those who could see the private
            item hear of its deletion (nobody else ever knew its id).
        public: Whether the item was public when it was deleted.
    """
    removed = ItemRemoved(item_id=item_id)
    seen: set[int] = set()
    could_see = _can_see(owner_id, public) if owner_id is not None and not public else None

    def once(connection: Connection) -> bool:
        # A connection on both topics hears about the deletion once.
        if connection.id in seen or (could_see is not None and not could_see(connection)):
            return False
        seen.add(connection.id)
        return connection.principal is not None

    for topic in (CATALOGUE_TOPIC, item_topic(item_id)):
        events.publish(topic, removed, once)
