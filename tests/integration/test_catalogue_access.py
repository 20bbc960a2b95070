"""Authorisation: private items stay private in every request; only owners and admins change."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.server import PixmartServer
from protocol.catalogue_client import (
    CatalogueWatch,
    browse,
    delete_items,
    download_original,
    edit_item,
    get_item,
    list_tags,
)
from protocol.client import Session
from protocol.errors import ErrorCode, Forbidden, NotFound
from protocol.messages.base import Event
from protocol.messages.catalogue import GetOriginal, ListingFilters, OriginalData
from protocol.messages.live import ItemAdded, ItemChanged, ItemRemoved
from tests.conftest import SessionFactory, logged_in
from tests.support import eventually
from tests.support.catalogue import jpeg, stored, upload


class Inbox:
    """The events a session receives."""

    def __init__(self, session: Session) -> None:
        self.events: list[Event] = []
        session.on_event(self.events.append)

    def about(self, item_id: int) -> list[Event]:
        """Events naming ``item_id``."""
        return [event for event in self.events if getattr(event, "item_id", None) == item_id]

    async def wait_for(self, item_id: int, kind: type[Event]) -> None:
        """Until an event of ``kind`` about ``item_id`` has arrived."""

        async def arrived() -> bool:
            return any(isinstance(event, kind) for event in self.about(item_id))

        await eventually(arrived)


async def test_a_private_item_is_invisible_to_others_in_every_request(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    assert alice.user is not None
    public = await upload(alice, tmp_path, jpeg(30), "Public zebra", tags=["shared"])
    secret = await upload(
        alice, tmp_path, jpeg(31), "Zanzibar plans", tags=["shared", "secret-tag"], public=False
    )
    sid = secret.item.id

    # The owner sees it everywhere.
    assert (await get_item(alice, sid)).public is False
    assert sid in [card.id for card in (await browse(alice)).items]
    assert [card.id for card in (await browse(alice, ListingFilters(text="zanzibar"))).items] == [
        sid
    ]
    assert {t.name: t.count for t in await list_tags(alice, "s")}["secret-tag"] == 1

    # Nobody else does, whatever they ask.
    with pytest.raises(NotFound):
        await get_item(bob, sid)
    with pytest.raises(NotFound):
        await bob.request(GetOriginal(item_id=sid), OriginalData)
    everything = await browse(bob)
    assert [card.id for card in everything.items] == [public.item.id] and everything.total == 1
    for filters in (
        ListingFilters(text="zanzibar"),
        ListingFilters(text="plans"),
        ListingFilters(tags=["secret-tag"]),
        ListingFilters(owner_id=alice.user.id, tags=["shared"]),
    ):
        batch = await browse(bob, filters)
        assert sid not in [card.id for card in batch.items], filters
    assert (await browse(bob, ListingFilters(text="zanzibar"))).total == 0
    tags = {t.name: t.count for t in await list_tags(bob, "s")}
    assert "secret-tag" not in tags and tags["shared"] == 1
    with pytest.raises(NotFound):
        await edit_item(bob, sid, title="Mine now")
    [result] = await delete_items(bob, [sid])
    assert result.error is ErrorCode.NOT_FOUND
    assert await CatalogueWatch(bob).watch_items([sid, public.item.id]) == [public.item.id]
    assert (await get_item(alice, sid)).title == "Zanzibar plans"
    assert (await stored(server)).items == 2


async def test_others_cannot_change_or_delete_a_public_item(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = (await upload(alice, tmp_path, jpeg(32), "Alice's", price_cents=100)).item
    with pytest.raises(Forbidden):
        await edit_item(bob, item.id, price_cents=1)
    with pytest.raises(Forbidden):
        await edit_item(bob, item.id, public=False)
    [result] = await delete_items(bob, [item.id])
    assert result.error is ErrorCode.FORBIDDEN
    assert (await get_item(bob, item.id)).price_cents == 100
    _, reply = await download_original(bob, item.id)
    assert reply.stripped


async def test_an_admin_may_moderate_any_item(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    carol = await logged_in(make_session, "carol")
    await server.accounts.set_admin("carol")
    item = (await upload(alice, tmp_path, jpeg(33), "Offending", public=False)).item
    assert item.id not in [card.id for card in (await browse(carol)).items]  # lists: owner only
    assert (await edit_item(carol, item.id, title="Taken down")).title == "Taken down"
    [result] = await delete_items(carol, [item.id])
    assert result.error is None
    with pytest.raises(NotFound):
        await get_item(alice, item.id)


async def test_live_events_reach_only_those_who_may_see_the_item(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    alice_inbox, bob_inbox = Inbox(alice), Inbox(bob)
    await CatalogueWatch(alice).watch_catalogue()
    await CatalogueWatch(bob).watch_catalogue()

    secret = (await upload(alice, tmp_path, jpeg(34), "Secret", public=False)).item
    shown = (await upload(alice, tmp_path, jpeg(35), "Shown")).item
    # Events reach a connection in order: once Bob heard of the public item, he would have
    # heard of the private one before it.
    await bob_inbox.wait_for(shown.id, ItemAdded)
    await alice_inbox.wait_for(secret.id, ItemAdded)
    assert bob_inbox.about(secret.id) == []

    await CatalogueWatch(bob).watch_items([shown.id])
    await edit_item(alice, secret.id, price_cents=7)  # still private
    await edit_item(alice, shown.id, public=False)  # public -> private
    await bob_inbox.wait_for(shown.id, ItemRemoved)
    await alice_inbox.wait_for(shown.id, ItemChanged)
    assert bob_inbox.about(secret.id) == []
    assert not any(isinstance(e, ItemChanged) and not e.public for e in bob_inbox.events)

    await edit_item(alice, secret.id, public=True)  # private -> public: now Bob may know
    await bob_inbox.wait_for(secret.id, ItemAdded)
    await delete_items(alice, [secret.id])
    await bob_inbox.wait_for(secret.id, ItemRemoved)

    # Deleting a private item is news to its owner only.
    hidden = (await upload(alice, tmp_path, jpeg(37), "Hidden", public=False)).item
    sentinel = (await upload(alice, tmp_path, jpeg(38), "Sentinel")).item
    await delete_items(alice, [hidden.id, sentinel.id])
    await bob_inbox.wait_for(sentinel.id, ItemRemoved)
    await alice_inbox.wait_for(hidden.id, ItemRemoved)
    assert bob_inbox.about(hidden.id) == []


async def test_item_watchers_hear_changes_and_resubscribe_after_a_drop(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    inbox = Inbox(bob)
    item = (await upload(alice, tmp_path, jpeg(36), "Watched", price_cents=100)).item
    watch = CatalogueWatch(bob)
    assert await watch.watch_items([item.id]) == [item.id]
    bob.abort_transport()
    await get_item(bob, item.id)  # waits for the reconnect

    async def resubscribed() -> bool:
        await edit_item(alice, item.id, price_cents=len(inbox.events) + 200)
        return any(isinstance(e, ItemChanged) and e.item_id == item.id for e in inbox.events)

    await eventually(resubscribed, interval=0.05)
