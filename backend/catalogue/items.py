"""Provides the access rules of items and the lookup that applies them.

Access rules in one place: an item is *seen* by everyone when public and by its owner always;
admins may act on any item by id (moderation) but, like everyone, find other people's private
items in no listing. Only the owner or an admin *changes* or deletes an item. An item someone
may not see is reported as not found, never as forbidden, so ids do not leak existence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from backend.accounts.service import Principal
from backend.catalogue.repository import CatalogueRepository, ItemRow
from protocol.errors import Forbidden, NotFound

Clock = Callable[[], float]


class Owned(Protocol):
    """What access to an item depends on: its owner and whether it is public."""

    @property
    def owner_id(self) -> int: ...

    @property
    def public(self) -> bool: ...


def can_see(principal: Principal, item: Owned) -> bool:
    """Whether ``principal`` may fetch ``item`` (or its pictures) by id."""
    return item.public or item.owner_id == principal.user_id or principal.is_admin


def can_change(principal: Principal, item: ItemRow) -> bool:
    """Whether ``principal`` may edit or delete ``item``."""
    return item.owner_id == principal.user_id or principal.is_admin


def not_found(item_id: int) -> NotFound:
    """The error for an item that does not exist or that the caller may not see."""
    return NotFound(f"There is no item {item_id}")


async def item_for(
    items: CatalogueRepository, principal: Principal, item_id: int, *, change: bool
) -> ItemRow:
    """Return the item if ``principal`` may see it (and change it, with ``change``).

    Raises:
        NotFound: no such item, or one the principal may not see.
        Forbidden: the principal sees it but may not change it.
    """
    item = (await items.items([item_id])).get(item_id)
    if item is None or not can_see(principal, item):
        raise not_found(item_id)
    if change and not can_change(principal, item):
        raise Forbidden("Only the seller can change or delete this item")
    return item
