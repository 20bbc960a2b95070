"""Provides the live events about items that the server pushes to subscribed clients."""

from __future__ import annotations

from protocol.messages.base import Event, Message


class ItemAdded(Event):
    """A new item the receiver may see was listed."""

    item_id: int
    owner_id: int


class ItemChanged(Event):
    """An item's listing changed (price, stock, title, tags or visibility)."""

    item_id: int
    title: str
    price_cents: int
    stock: int
    public: bool


class ItemRemoved(Event):
    """An item was deleted, or became invisible to the receiver."""

    item_id: int


MESSAGES: tuple[type[Message], ...] = (ItemAdded, ItemChanged, ItemRemoved)
