"""Provides :class:`FavouriteNotifier`: inbox notices when a favourite gets cheaper or returns.

It hangs on the catalogue's item-changed hook, which runs after the edit committed on the
instance that made it, so each change is told once however many instances a shop runs (the
other instances only relay the live events). Who is told is decided by the inbox: only keepers
who may still see the item get a notice; the seller who made the change is not told of it.
"""

from __future__ import annotations

from backend.catalogue.repository import ItemRow
from backend.favourites.repository import FavouritesRepository
from backend.inbox.notices import NewNotice
from backend.inbox.service import InboxService
from protocol.messages.catalogue import ItemCard
from protocol.messages.inbox import NoticeKind
from protocol.money import format_price

#: Keepers told in one inbox transaction.
DELIVERY_BATCH = 500


def notice_for_change(before: ItemRow, after: ItemCard, currency: str) -> NewNotice | None:
    """The notice a favourite's keepers get for this change, or ``None`` if it is not news.

    News is a price that dropped, or stock back from none; both at once make one notice.
    """
    cheaper = after.price_cents < before.price_cents
    restocked = before.stock == 0 and after.stock > 0
    if not (cheaper or restocked):
        return None
    title = f"'{after.title}'"
    price = format_price(after.price_cents, currency)
    was = format_price(before.price_cents, currency)
    if restocked:
        text = f"{title} is back in stock ({after.stock} left)"
        if cheaper:
            text += f", now {price} (was {was})"
        return NewNotice(kind=NoticeKind.BACK_IN_STOCK, text=text, item_id=after.id)
    return NewNotice(
        kind=NoticeKind.PRICE_DROP, text=f"{title} now costs {price} (was {was})", item_id=after.id
    )


class FavouriteNotifier:
    """Delivers the notices of item changes to the items' keepers.

    Args:
        repository: Who keeps which item.
        inbox: Where notices go (it checks each keeper may see the item).
        currency: The shop's currency, for prices in the texts.
    """

    def __init__(
        self, repository: FavouritesRepository, inbox: InboxService, currency: str
    ) -> None:
        self._repository = repository
        self._inbox = inbox
        self._currency = currency

    async def item_changed(self, before: ItemRow, after: ItemCard) -> None:
        """Tell the item's keepers of a price drop or a return to stock."""
        notice = notice_for_change(before, after, self._currency)
        if notice is None:
            return
        keepers = [
            user for user in await self._repository.keepers(after.id) if user != after.owner_id
        ]
        # In batches: one transaction per batch keeps each short, however many keep the item.
        for start in range(0, len(keepers), DELIVERY_BATCH):
            await self._inbox.deliver_to(keepers[start : start + DELIVERY_BATCH], notice)
