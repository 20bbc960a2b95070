"""Provides publishing of item events, with visibility applied per receiving connection.

Topics: ``"catalogue"`` (every open gallery), ``"item:<id>"`` (clients looking at or holding the
item). Private items are announced to their owner only; when an item turns private, everyone else
is told it was removed.

Each publisher delivers to this instance's connections and shares the fact (item, owner,
visibility: never a decision about a viewer) with the other instances, which deliver it to
theirs by the same rules (:func:`listen`).
"""

from __future__ import annotations

from backend.connection import Connection
from backend.eventbus import EventBus, Fact
from backend.events import Audience, EventHub
from protocol.messages.live import ItemAdded, ItemChanged, ItemRemoved

CATALOGUE_TOPIC = "catalogue"


def item_topic(item_id: int) -> str:
    """The topic of one item's watchers."""
    return f"item:{item_id}"


class ItemAddedFact(Fact, frozen=True, kw_only=True):
    """An item was listed, or turned public."""

    item_id: int
    owner_id: int
    public: bool


class ItemChangedFact(Fact, frozen=True, kw_only=True):
    """An item's title, price, stock or visibility changed (``was_public``: see
    :func:`publish_changed`)."""

    item_id: int
    owner_id: int
    title: str
    price_cents: int
    stock: int
    public: bool
    was_public: bool | None = None


class ItemRemovedFact(Fact, frozen=True, kw_only=True):
    """An item was deleted (``owner_id``, ``public``: see :func:`publish_removed`)."""

    item_id: int
    owner_id: int | None = None
    public: bool = True


def listen(bus: EventBus, events: EventHub) -> None:
    """Deliver the item facts of other instances to this instance's connections."""
    bus.on(ItemAddedFact, lambda fact: _deliver_added(events, fact))
    bus.on(ItemChangedFact, lambda fact: _deliver_changed(events, fact))
    bus.on(ItemRemovedFact, lambda fact: _deliver_removed(events, fact))


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
    fact = ItemAddedFact(item_id=item_id, owner_id=owner_id, public=public)
    _deliver_added(events, fact)
    events.share(fact)


def _deliver_added(events: EventHub, fact: ItemAddedFact) -> None:
    events.publish(
        CATALOGUE_TOPIC,
        ItemAdded(item_id=fact.item_id, owner_id=fact.owner_id),
        _can_see(fact.owner_id, fact.public),
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
    fact = ItemChangedFact(
        item_id=item_id,
        owner_id=owner_id,
        title=title,
        price_cents=price_cents,
        stock=stock,
        public=public,
        was_public=was_public,
    )
    _deliver_changed(events, fact)
    events.share(fact)


def _deliver_changed(events: EventHub, fact: ItemChangedFact) -> None:
    changed = ItemChanged(
        item_id=fact.item_id,
        title=fact.title,
        price_cents=fact.price_cents,
        stock=fact.stock,
        public=fact.public,
    )
    removed = ItemRemoved(item_id=fact.item_id)
    for topic in (CATALOGUE_TOPIC, item_topic(fact.item_id)):
        events.publish(topic, changed, _can_see(fact.owner_id, fact.public))
        if fact.was_public and not fact.public:
            events.publish(topic, removed, _cannot_see(fact.owner_id, fact.public))


def publish_removed(
    events: EventHub, *, item_id: int, owner_id: int | None = None, public: bool = True
) -> None:
    """Announce a deletion to everyone watching the catalogue or the item.

    Args:
        owner_id: The item's owner; with ``public=False`` only those who could see the private
            item hear of its deletion (nobody else ever knew its id).
        public: Whether the item was public when it was deleted.
    """
    fact = ItemRemovedFact(item_id=item_id, owner_id=owner_id, public=public)
    _deliver_removed(events, fact)
    events.share(fact)


def _deliver_removed(events: EventHub, fact: ItemRemovedFact) -> None:
    owner_id, public = fact.owner_id, fact.public
    removed = ItemRemoved(item_id=fact.item_id)
    seen: set[int] = set()
    could_see = _can_see(owner_id, public) if owner_id is not None and not public else None

    def once(connection: Connection) -> bool:
        # A connection on both topics hears about the deletion once.
        if connection.id in seen or (could_see is not None and not could_see(connection)):
            return False
        seen.add(connection.id)
        return connection.principal is not None

    for topic in (CATALOGUE_TOPIC, item_topic(fact.item_id)):
        events.publish(topic, removed, once)
