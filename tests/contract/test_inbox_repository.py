"""The inbox and favourites repositories give the same answers on SQLite and PostgreSQL.

Users and items are written with plain SQL (the accounts and catalogue have their own suites),
so these cases hold only inboxes and favourites to their contracts: delivery only to who may see
the item, the bound on each inbox, visibility judged again at listing, reading and clearing one's
own notices only, and the bound on favourites.
"""

from __future__ import annotations

from backend.favourites.repositories import favourites_repository
from backend.inbox.notices import NewNotice
from backend.inbox.repositories import inbox_repository
from backend.storage.engine import StorageEngine
from protocol.messages.inbox import NoticeItemStatus, NoticeKind
from tests.contract.test_commerce_repository import T0, Store


def _note(text: str, item_id: int | None = None) -> NewNotice:
    return NewNotice(kind=NoticeKind.PRICE_DROP, text=text, item_id=item_id)


async def test_a_notice_goes_only_to_those_who_may_see_its_item(engine: StorageEngine) -> None:
    store, inbox = Store(engine), inbox_repository(engine)
    seller, buyer = await store.user("seller"), await store.user("buyer")
    admin = await store.user("admin")
    await store.write("UPDATE users SET is_admin = ? WHERE id = ?", True, admin)
    hidden = await store.item(seller, public=False)
    shown = await store.item(seller)

    delivered = await inbox.add(
        [seller, buyer, admin, 999], _note("hidden", hidden), now=T0, keep=5
    )
    assert sorted(d.notice.user_id for d in delivered) == sorted([seller, admin])
    delivered = await inbox.add([buyer, buyer], _note("shown", shown), now=T0, keep=5)
    assert [(d.notice.user_id, d.unread, d.notice.text) for d in delivered] == [(buyer, 1, "shown")]
    assert [d.notice.user_id for d in await inbox.add([buyer], _note("none"), now=T0, keep=5)] == [
        buyer
    ]


async def test_each_inbox_keeps_its_newest_notices(engine: StorageEngine) -> None:
    store, inbox = Store(engine), inbox_repository(engine)
    one, two = await store.user("one"), await store.user("two")
    for n in range(5):
        delivered = await inbox.add([one, two], _note(f"n{n}"), now=T0 + n, keep=3)
        assert {d.unread for d in delivered} == {min(n + 1, 3)}
    for user in (one, two):
        listed = await inbox.notices(user, below=None, limit=10)
        assert [n.text for n in listed] == ["n4", "n3", "n2"]
        assert [n.created_at for n in listed] == [T0 + 4, T0 + 3, T0 + 2]
    assert await inbox.add([one], _note("never kept"), now=T0, keep=0) == []


async def test_listing_judges_visibility_again(engine: StorageEngine) -> None:
    store, inbox = Store(engine), inbox_repository(engine)
    seller, buyer = await store.user("seller"), await store.user("buyer")
    turned, deleted, still = [await store.item(seller) for _ in range(3)]
    for item in (turned, deleted, still):
        await inbox.add([buyer, seller], _note(f"about {item}", item), now=T0, keep=10)
    await store.edit(turned, public=False)
    await store.delete(deleted)

    views = {n.item_id: n.view() for n in await inbox.notices(buyer, below=None, limit=10)}
    assert views[turned].item_status is NoticeItemStatus.PRIVATE
    assert f"about {turned}" not in views[turned].text
    assert views[deleted].item_status is NoticeItemStatus.DELETED
    assert (views[still].item_status, views[still].text) == (
        NoticeItemStatus.AVAILABLE,
        f"about {still}",
    )
    owners = {n.item_id: n.view() for n in await inbox.notices(seller, below=None, limit=10)}
    assert owners[turned].item_status is NoticeItemStatus.AVAILABLE


async def test_reading_and_clearing_touch_ones_own_notices_only(engine: StorageEngine) -> None:
    store, inbox = Store(engine), inbox_repository(engine)
    one, two = await store.user("one"), await store.user("two")
    for n in range(3):
        await inbox.add([one, two], _note(f"n{n}"), now=T0, keep=10)
    ones = [n.id for n in await inbox.notices(one, below=None, limit=10)]
    twos = [n.id for n in await inbox.notices(two, below=None, limit=10)]

    assert await inbox.mark_read(one, [ones[0], *twos]) == 2
    assert await inbox.unread(two) == 3
    assert [n.read for n in await inbox.notices(one, below=None, limit=10)] == [True, False, False]
    page = await inbox.notices(one, below=ones[0], limit=1)
    assert [n.id for n in page] == [ones[1]]
    assert await inbox.mark_read(one, None) == 0
    await inbox.clear(one)
    assert await inbox.notices(one, below=None, limit=10) == []
    assert len(await inbox.notices(two, below=None, limit=10)) == 3
    assert (await inbox.notice(twos[0])) is not None and await inbox.notice(ones[0]) is None


async def test_favourites_are_kept_once_and_bounded(engine: StorageEngine) -> None:
    store, favourites = Store(engine), favourites_repository(engine)
    seller, buyer, other = [await store.user(name) for name in ("seller", "buyer", "other")]
    items = [await store.item(seller, f"Print {n}", price_cents=100 + n) for n in range(3)]

    assert await favourites.add(buyer, items[0], "Print 0", 100, now=T0, limit=2) == 1
    assert await favourites.add(buyer, items[0], "Print 0", 100, now=T0, limit=2) == 1
    assert await favourites.add(buyer, items[1], "Print 1", 101, now=T0 + 1, limit=2) == 2
    assert await favourites.add(buyer, items[2], "Print 2", 102, now=T0 + 2, limit=2) is None
    assert await favourites.add(other, items[1], "Print 1", 101, now=T0, limit=2) == 1
    assert await favourites.item_ids(buyer) == [items[1], items[0]]
    assert await favourites.keepers(items[1]) == sorted([buyer, other])

    await store.delete(items[0])
    listed = await favourites.favourites(buyer, below=None, limit=10)
    assert [(f.item_id, f.title, f.price_cents, f.item_exists) for f in listed] == [
        (items[1], "Print 1", 101, True),
        (items[0], "Print 0", 100, False),
    ]
    assert [f.item_id for f in await favourites.favourites(buyer, below=listed[0].id, limit=5)] == [
        items[0]
    ]
    assert await favourites.remove(buyer, items[0]) == 1
    assert await favourites.remove(buyer, items[0]) == 1
    assert await favourites.add(buyer, items[2], "Print 2", 102, now=T0, limit=2) == 2
