"""The server's cache of listing batches never serves a batch an edit, a deletion or a change
of visibility made stale, and never one viewer's batch to another."""

from __future__ import annotations

from pathlib import Path

from backend.server import PixmartServer
from protocol.catalogue_client import browse, delete_items, edit_item
from protocol.client import Session
from tests.conftest import SessionFactory, logged_in
from tests.support.catalogue import catalogue, jpeg, upload


def _cached_batches(server: PixmartServer) -> int:
    cache = catalogue(server).listings.cache
    assert cache is not None
    return len(cache)


async def _ids(session: Session, **kwargs: object) -> list[int]:
    return [card.id for card in (await browse(session, **kwargs)).items]  # type: ignore[arg-type]


async def test_batches_follow_edits_deletions_and_visibility(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    ids = [(await upload(alice, tmp_path, jpeg(n), f"Item {n}")).item.id for n in range(3)]
    newest_first = ids[::-1]
    first = await browse(bob, limit=2)
    assert [c.id for c in first.items] == newest_first[:2] and first.total == 3
    second = await browse(bob, limit=2, cursor=first.cursor)
    assert [c.id for c in second.items] == newest_first[2:]
    assert _cached_batches(server) == 2
    # Served from the cache: the same answer, pictures and all.
    again = await browse(bob, limit=2)
    assert again.cursor == first.cursor and [c.thumbnail for c in again.items] == [
        c.thumbnail for c in first.items
    ]

    await edit_item(alice, ids[0], price_cents=12_345)
    assert _cached_batches(server) == 0
    page = await browse(bob, limit=2, cursor=first.cursor)
    assert [(c.id, c.price_cents) for c in page.items] == [(ids[0], 12_345)]

    await edit_item(alice, ids[0], public=False)
    assert await _ids(bob, limit=2, cursor=first.cursor) == []
    assert (await browse(bob, limit=2)).total == 2
    # Alice still sees her private item: the same listing, another viewer, another entry.
    assert await _ids(bob) == newest_first[:2]
    assert await _ids(alice) == newest_first
    assert await _ids(bob) == newest_first[:2]

    await delete_items(alice, [ids[2]])
    assert await _ids(bob, limit=2) == [ids[1]]
    assert await _ids(alice, limit=2) == [ids[1], ids[0]]


async def test_a_private_upload_reaches_its_owner_at_once_and_nobody_else(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    public = (await upload(alice, tmp_path, jpeg(1), "Public")).item.id
    assert await _ids(alice) == [public] and await _ids(bob) == [public]
    hidden = (await upload(alice, tmp_path, jpeg(2), "Hidden", public=False)).item.id
    assert await _ids(alice) == [hidden, public]
    assert await _ids(bob) == [public]
