"""Provides :class:`FavouritesModel`: which items the person keeps, and toggling one.

The list is the server's; the model keeps the ids of the kept items (at most 1,000) so any card
or item page can say whether it is a favourite and toggle it with one key. Toggles go one at a
time (a lane), so answers arrive in the order the presses were made.

The model publishes the ids on :attr:`FavouritesModel.updates`; it runs its requests as workers
of the app it is given, tells what happened through the app, and never pushes a screen.

:class:`FavouritesQuery` is the favourites as a listing, for the card grid of the favourites
screen: available items show their cards; a favourite whose item was deleted or turned private
shows as a card without a picture, marked so, with the title and price it had when added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.signal import Signal

from protocol import favourites_client
from protocol.client import Session
from protocol.errors import BadRequest, NotFound
from protocol.messages.catalogue import ItemBatch, ItemCard
from protocol.messages.favourites import Favourite, FavouriteStatus
from protocol.messages.vision import SimilarBatch
from tui.data.listing import Listing, ListingQuery


class FavouritesModel:
    """The kept items' ids, and adding or dropping one.

    Args:
        app: runs the background requests and tells the person what happened.
        session: the session to send with (raises :class:`~protocol.client.Offline` if none).
        report_failure: tells the person what went wrong, in words.
    """

    def __init__(
        self,
        app: App[Any],
        *,
        session: Callable[[], Session],
        report_failure: Callable[[BaseException], object],
    ) -> None:
        self._app = app
        self._session = session
        self._report_failure = report_failure
        #: The kept items' ids as the server last told them; empty until asked.
        self.ids: frozenset[int] = frozenset()
        #: Published with the ids whenever they change.
        self.updates: Signal[frozenset[int]] = Signal(app, "favourites-updates")
        self._lane = asyncio.Lock()

    def forget(self) -> None:
        """Drop the ids (after a logout)."""
        self._set_ids(frozenset())

    def holds(self, item_id: int) -> bool:
        """Whether the item is among the favourites."""
        return item_id in self.ids

    async def refresh(self) -> None:
        """Ask the server which items are kept (a failure leaves the ids as they were)."""
        try:
            ids = await favourites_client.favourite_ids(self._session())
        except Exception:
            return
        self._set_ids(frozenset(ids))

    def toggle(self, item_id: int, title: str = "") -> None:
        """Keep the item, or drop it if kept, in the background; the person is told which."""
        self._app.run_worker(self._toggle(item_id, title), group="favourites-toggle")

    async def _toggle(self, item_id: int, title: str) -> None:
        name = f"“{title}”" if title else f"Item #{item_id}"
        async with self._lane:
            keep = item_id not in self.ids
            try:
                state = await favourites_client.set_favourite(self._session(), item_id, keep)
            except (BadRequest, NotFound) as exc:
                self._app.notify(exc.message, severity="warning", markup=False)
                return
            except Exception as exc:
                self._report_failure(exc)
                return
            ids = self.ids | {item_id} if state.favourite else self.ids - {item_id}
            self._set_ids(ids)
        if state.favourite:
            text = f"{name} is a favourite ({state.count} kept). F lists them."
        else:
            text = f"{name} is no longer a favourite ({state.count} kept)."
        self._app.notify(text, timeout=3, markup=False)

    def _set_ids(self, ids: frozenset[int]) -> None:
        self.ids = ids
        self.updates.publish(ids)


#: What the card of a favourite that is no longer available says before its title.
GONE_WORDS: dict[FavouriteStatus, str] = {
    FavouriteStatus.DELETED: "deleted",
    FavouriteStatus.PRIVATE: "no longer available",
}


def favourite_card(favourite: Favourite) -> ItemCard:
    """The card a favourite shows: its item's, or a pictureless one saying what became of it.

    A gone favourite's card is sold out (nothing to buy) and, if private, marked so; its title
    says what happened, and its price is the one it had when added.
    """
    if favourite.card is not None:
        return favourite.card
    words = GONE_WORDS.get(favourite.status, favourite.status.value)
    return ItemCard(
        id=favourite.item_id,
        title=f"({words}) {favourite.title}",
        price_cents=favourite.price_cents,
        stock=0,
        public=favourite.status is not FavouriteStatus.PRIVATE,
        owner_id=0,
        owner_name="",
        tags=[],
        width=0,
        height=0,
        created_at=favourite.added_at,
    )


class FavouritesQuery(ListingQuery):
    """The person's favourites, newest first (filters and sort order do not apply)."""

    def describe(self) -> str:
        return "your favourites, newest first"

    def listing(self, batch_size: int | None = None) -> FavouritesListing:
        return FavouritesListing(self, batch_size)


class FavouritesListing(Listing):
    """The favourites loaded so far, as cards, and what became of those no longer available."""

    def __init__(self, query: FavouritesQuery, batch_size: int | None = None) -> None:
        super().__init__(query, batch_size)
        #: Favourites whose item was deleted or turned private, by item id.
        self.gone: dict[int, FavouriteStatus] = {}

    async def fetch_batch(self, session: Session) -> ItemBatch | SimilarBatch:
        batch = await favourites_client.favourites_batch(
            session, limit=self.batch_size, cursor=self.cursor, pictures=self.picture_mode
        )
        for favourite in batch.favourites:
            if favourite.status is not FavouriteStatus.AVAILABLE:
                self.gone[favourite.item_id] = favourite.status
        cards = [favourite_card(favourite) for favourite in batch.favourites]
        return ItemBatch(id=0, items=cards, cursor=batch.cursor, total=batch.total)


__all__ = [
    "FavouritesListing",
    "FavouritesModel",
    "FavouritesQuery",
    "favourite_card",
]
