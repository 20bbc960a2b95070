"""Favourites over a real server: keeping and dropping items, the bound, visibility, and the
inbox notices a price drop or a return to stock sends their keepers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.server import PixmartServer
from protocol import favourites_client as fav
from protocol import inbox_client as inbox
from protocol.catalogue_client import delete_items, edit_item
from protocol.errors import BadRequest, NotFound
from protocol.messages.catalogue import PictureMode
from protocol.messages.favourites import FavouriteStatus
from protocol.messages.inbox import InboxChanged, NoticeKind
from tests.conftest import SessionFactory, logged_in
from tests.support.commerce import EventLog, list_item


async def test_keeping_and_dropping_favourites(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    first = await list_item(alice, tmp_path, title="Harbour", price_cents=900)
    second = await list_item(alice, tmp_path, title="Dunes", price_cents=700)

    assert (await fav.add_favourite(bob, first)).count == 1
    state = await fav.add_favourite(bob, second)
    assert (state.favourite, state.count) == (True, 2)
    assert (await fav.add_favourite(bob, first)).count == 2  # kept once
    assert await fav.favourite_ids(bob) == [second, first]
    batch = await fav.favourites_batch(bob)
    listed = batch.favourites
    assert batch.total == 2
    assert [(f.item_id, f.title, f.status) for f in listed] == [
        (second, "Dunes", FavouriteStatus.AVAILABLE),
        (first, "Harbour", FavouriteStatus.AVAILABLE),
    ]
    assert listed[0].card is not None and listed[0].card.thumbnail  # resolved by hash
    # The server inlines thumbnails as asked, like every listing.
    inline = await fav.favourites_batch(bob, with_pictures=False)
    hashes = await fav.favourites_batch(bob, with_pictures=False, pictures=PictureMode.HASHES)
    assert all(f.card is not None and f.card.thumbnail for f in inline.favourites)
    assert all(
        f.card is not None and f.card.thumbnail is None and f.card.thumbnail_sha256
        for f in hashes.favourites
    )
    removed = await fav.remove_favourite(bob, second)
    assert (removed.favourite, removed.count) == (False, 1)
    assert (await fav.remove_favourite(bob, second)).count == 1  # not there: nothing changes
    assert await fav.favourite_ids(alice) == []  # each user has their own


async def test_a_picture_one_may_not_see_cannot_be_kept(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    secret = await list_item(alice, tmp_path, title="Draft", public=False)
    with pytest.raises(NotFound):
        await fav.add_favourite(bob, secret)
    with pytest.raises(NotFound):
        await fav.add_favourite(bob, 987_654)
    assert (await fav.add_favourite(alice, secret)).count == 1  # its owner may


async def test_a_favourite_that_turns_private_or_is_deleted_shows_as_such(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    hidden = await list_item(alice, tmp_path, title="Soon private", price_cents=500)
    doomed = await list_item(alice, tmp_path, title="Soon gone", price_cents=600)
    await fav.add_favourite(bob, hidden)
    await fav.add_favourite(bob, doomed)

    await edit_item(alice, hidden, public=False, title="Renamed in private", price_cents=100)
    await delete_items(alice, [doomed])

    listed = {f.item_id: f for f in (await fav.favourites_batch(bob)).favourites}
    assert (listed[hidden].status, listed[hidden].title, listed[hidden].price_cents) == (
        FavouriteStatus.PRIVATE,
        "Soon private",
        500,
    )
    assert listed[hidden].card is None
    assert (listed[doomed].status, listed[doomed].title) == (FavouriteStatus.DELETED, "Soon gone")
    assert listed[doomed].card is None


async def test_favourites_are_bounded_per_user(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    assert server.domains is not None
    server.domains.favourites.service._max = 2  # the real bound (1,000) is too slow to fill
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    items = [await list_item(alice, tmp_path, title=f"Print {n}") for n in range(3)]
    await fav.add_favourite(bob, items[0])
    await fav.add_favourite(bob, items[1])
    with pytest.raises(BadRequest, match="2 favourites"):
        await fav.add_favourite(bob, items[2])
    assert (await fav.add_favourite(bob, items[1])).count == 2  # kept already: fine
    await fav.remove_favourite(bob, items[0])
    assert (await fav.add_favourite(bob, items[2])).count == 2


async def test_listing_comes_in_batches(make_session: SessionFactory, tmp_path: Path) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    items = [await list_item(alice, tmp_path, title=f"Print {n}") for n in range(5)]
    for item in items:
        await fav.add_favourite(bob, item)
    first = await fav.favourites_batch(bob, limit=2)
    assert [f.item_id for f in first.favourites] == items[:-3:-1]
    assert first.total == 5
    assert (await fav.favourites_batch(bob, limit=2, cursor=first.cursor)).total is None
    assert [f.item_id async for f in fav.iter_favourites(bob, limit=2)] == items[::-1]
    with pytest.raises(BadRequest):
        await fav.favourites_batch(alice, cursor=first.cursor)


async def test_keepers_are_told_of_a_price_drop_and_a_return_to_stock(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    carol = await logged_in(make_session, "carol")
    item = await list_item(alice, tmp_path, title="Harbour", price_cents=900, stock=0)
    await fav.add_favourite(bob, item)
    await fav.add_favourite(alice, item)  # the seller who makes the change is not told
    assert await inbox.unread_count(bob) == 0
    bobs = EventLog(bob)

    await edit_item(alice, item, price_cents=1000)  # dearer: no news
    await edit_item(alice, item, stock=3)
    restocked = await bobs.wait_for(InboxChanged, lambda e: e.notice is not None)
    assert restocked.unread == 1 and restocked.notice is not None
    assert restocked.notice.kind is NoticeKind.BACK_IN_STOCK
    assert restocked.notice.item_id == item
    await edit_item(alice, item, price_cents=750)
    await edit_item(alice, item, stock=2)  # less stock, not back in stock: no news

    notices = (await inbox.inbox_batch(bob)).notices
    assert [(n.kind, n.text) for n in notices] == [
        (NoticeKind.PRICE_DROP, "'Harbour' now costs €7.50 (was €10.00)"),
        (NoticeKind.BACK_IN_STOCK, "'Harbour' is back in stock (3 left)"),
    ]
    assert (await inbox.inbox_batch(alice)).notices == []
    assert (await inbox.inbox_batch(carol)).notices == []


async def test_a_keeper_who_may_no_longer_see_the_item_is_not_told(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, title="Harbour", price_cents=900)
    await fav.add_favourite(bob, item)
    await edit_item(alice, item, public=False)
    await edit_item(alice, item, price_cents=100)
    await asyncio.sleep(0.05)
    assert (await inbox.inbox_batch(bob)).notices == []
