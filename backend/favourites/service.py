"""Provides :class:`FavouritesService`: each user's bounded list of kept items.

Visibility is the catalogue's: an item is added only if the user may see its card now (the same
answer as reading a missing item otherwise), and a listing shows a card only for items the user
may still see; the others show as private or deleted, with the title and price they had when
added, like cart lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from backend.catalogue.service import CatalogueService
from backend.favourites.repository import FavouritesRepository, StoredFavourite
from backend.id_pages import IdPages, SecretSource
from backend.sent_pictures import SentPictures
from protocol.errors import BadRequest, NotFound
from protocol.messages.catalogue import ItemCard, PictureMode
from protocol.messages.favourites import MAX_FAVOURITES, Favourite, FavouriteStatus

#: The cursor scope of favourites listings.
FAVOURITES_SCOPE: Final = "favourites.list"


class FavouritesService:
    """Add, remove and list the items a user keeps.

    Every method acts on the favourites of the ``user_id`` it is given: handlers pass the
    caller's own id, never one from a request.

    Args:
        repository: Where favourites are stored.
        catalogue: Whose cards (and visibility rules) favourites show.
        secret: Reads the cursor secret, once, before the first listing.
        batch_default: Favourites per batch when the client does not say.
        batch_max: The most favourites a client may ask for in one batch.
        max_favourites: Favourites one user may keep.
        clock: The server clock.
    """

    def __init__(
        self,
        repository: FavouritesRepository,
        catalogue: CatalogueService,
        secret: SecretSource,
        *,
        batch_default: int,
        batch_max: int,
        max_favourites: int = MAX_FAVOURITES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._catalogue = catalogue
        self._pages: IdPages[StoredFavourite] = IdPages(
            FAVOURITES_SCOPE, secret, batch_default=batch_default, batch_max=batch_max
        )
        self._max = max_favourites
        self._clock = clock

    async def add(self, user_id: int, item_id: int) -> int:
        """Keep an item; return how many favourites the user keeps.

        Raises:
            NotFound: no such item, or one the user may not see.
            BadRequest: the user keeps the most favourites allowed already.
        """
        cards = await self._catalogue.render_cards(user_id, [item_id])
        if not cards:
            raise NotFound(f"There is no item {item_id}")
        card = cards[0]
        count = await self._repository.add(
            user_id, item_id, card.title, card.price_cents, now=self._clock(), limit=self._max
        )
        if count is None:
            raise BadRequest(
                f"You keep {self._max} favourites already, the most there may be; remove some first"
            )
        return count

    async def remove(self, user_id: int, item_id: int) -> int:
        """Drop an item (if kept); return how many favourites the user keeps."""
        return await self._repository.remove(user_id, item_id)

    async def item_ids(self, user_id: int) -> list[int]:
        """Every favourite's item id, newest first."""
        return await self._repository.item_ids(user_id)

    async def favourites(
        self,
        user_id: int,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        pictures: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> tuple[list[Favourite], str | None, int | None]:
        """A batch of the user's favourites, newest first, the next batch's cursor and, with
        the first batch, how many the user keeps.

        Args:
            pictures: Which thumbnails go inline (see the catalogue's ``CardPictures``).
            sent: The connection's record of pictures sent, for ``PictureMode.UNSENT``.

        Raises:
            BadRequest: ``limit`` is above the maximum, or the cursor is not one of this
                user's favourites listings.
        """

        async def fetch(below: int | None, size: int) -> list[StoredFavourite]:
            return await self._repository.favourites(user_id, below=below, limit=size)

        first = cursor is None
        rows, cursor = await self._pages.batch(user_id, fetch, limit=limit, cursor=cursor)
        live = [row.item_id for row in rows if row.item_exists]
        shown = await self._catalogue.render_cards(user_id, live, pictures=pictures, sent=sent)
        cards = {card.id: card for card in shown}
        total = len(await self._repository.item_ids(user_id)) if first else None
        return [_favourite(row, cards.get(row.item_id)) for row in rows], cursor, total


def _favourite(row: StoredFavourite, card: ItemCard | None) -> Favourite:
    """The favourite as the protocol shows it: with the card while its keeper may see it."""
    if card is not None:
        return Favourite(
            item_id=row.item_id,
            title=card.title,
            price_cents=card.price_cents,
            added_price_cents=row.price_cents,
            status=FavouriteStatus.AVAILABLE,
            added_at=row.added_at,
            card=card,
        )
    # Nothing more is said about a private item: its price and picture are not ours to show.
    return Favourite(
        item_id=row.item_id,
        title=row.title,
        price_cents=row.price_cents,
        added_price_cents=row.price_cents,
        status=FavouriteStatus.PRIVATE if row.item_exists else FavouriteStatus.DELETED,
        added_at=row.added_at,
    )
