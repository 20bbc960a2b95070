"""The inbox over a real server: delivery, live unread counts, reading, clearing, visibility,
and notices that survive a restart of the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.config import ServerConfig
from backend.inbox.notices import DELETED_TEXT, PRIVATE_TEXT, NewNotice
from backend.inbox.service import InboxService
from backend.server import PixmartServer
from protocol import inbox_client as inbox
from protocol.catalogue_client import delete_items, edit_item
from protocol.client import Session
from protocol.errors import BadRequest
from protocol.messages.inbox import InboxChanged, NoticeItemStatus, NoticeKind
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.support.commerce import EventLog, list_item


def _service(server: PixmartServer) -> InboxService:
    assert server.domains is not None
    return server.domains.inbox.service


def _note(text: str, item_id: int | None = None) -> NewNotice:
    return NewNotice(kind=NoticeKind.ALERT_MATCH, text=text, item_id=item_id)


async def test_a_delivered_notice_is_listed_and_counted_live(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    bob = await logged_in(make_session, "bob")
    phone = await make_session(token=bob.token)
    assert await inbox.unread_count(phone) == 0
    phones = EventLog(phone)
    assert bob.user is not None

    assert await _service(server).deliver(bob.user.id, _note("A new print you may like"))

    changed = await phones.wait_for(InboxChanged)
    assert changed.unread == 1
    assert changed.notice is not None and changed.notice.text == "A new print you may like"
    batch = await inbox.inbox_batch(bob)
    assert batch.unread == 1
    assert [(n.text, n.read, n.kind) for n in batch.notices] == [
        ("A new print you may like", False, NoticeKind.ALERT_MATCH)
    ]


async def test_marking_read_and_clearing_reach_the_other_devices(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    bob = await logged_in(make_session, "bob")
    assert bob.user is not None
    for n in range(3):
        await _service(server).deliver(bob.user.id, _note(f"notice {n}"))
    phone = await make_session(token=bob.token)
    assert await inbox.unread_count(phone) == 3
    phones = EventLog(phone)
    newest, middle, _oldest = [n.id for n in (await inbox.inbox_batch(bob)).notices]

    assert await inbox.mark_read(bob, [newest]) == 2
    assert (await phones.wait_for(InboxChanged, lambda e: e.unread == 2)).notice is None
    listed = (await inbox.inbox_batch(phone)).notices
    assert [n.read for n in listed] == [True, False, False]
    assert await inbox.mark_all_read(bob) == 0
    await phones.wait_for(InboxChanged, lambda e: e.unread == 0)

    await inbox.clear_inbox(bob)
    assert (await inbox.inbox_batch(phone)).notices == []
    assert middle not in [n.id for n in (await inbox.inbox_batch(bob)).notices]


async def test_nobody_reads_or_marks_another_users_inbox(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    assert bob.user is not None
    await _service(server).deliver(bob.user.id, _note("for bob only"))
    bobs = (await inbox.inbox_batch(bob)).notices
    alices = EventLog(alice)
    await inbox.unread_count(alice)

    assert (await inbox.inbox_batch(alice)).notices == []
    assert await inbox.mark_read(alice, [bobs[0].id]) == 0
    await inbox.clear_inbox(alice)
    assert [(n.id, n.read) for n in (await inbox.inbox_batch(bob)).notices] == [(bobs[0].id, False)]
    # A cursor of bob's listing does not open alice's.
    for n in range(3):
        await _service(server).deliver(bob.user.id, _note(f"more {n}"))
    cursor = (await inbox.inbox_batch(bob, limit=2)).cursor
    assert cursor is not None
    with pytest.raises(BadRequest):
        await inbox.inbox_batch(alice, cursor=cursor)
    await asyncio.sleep(0.05)
    assert alices.of(InboxChanged) == [] or all(e.notice is None for e in alices.of(InboxChanged))


async def test_listing_comes_in_batches_newest_first(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    bob = await logged_in(make_session, "bob")
    assert bob.user is not None
    for n in range(5):
        await _service(server).deliver(bob.user.id, _note(f"notice {n}"))
    first = await inbox.inbox_batch(bob, limit=2)
    assert [n.text for n in first.notices] == ["notice 4", "notice 3"]
    texts = [n.text async for n in inbox.iter_inbox(bob, limit=2)]
    assert texts == [f"notice {n}" for n in (4, 3, 2, 1, 0)]


async def test_a_notice_never_reveals_an_item_its_reader_may_not_see(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    assert bob.user is not None and alice.user is not None
    hidden = await list_item(alice, tmp_path, title="Secret", public=False)
    shown = await list_item(alice, tmp_path, title="Harbour")
    doomed = await list_item(alice, tmp_path, title="Gone soon")
    service = _service(server)

    # Not delivered at all about a private item of someone else; its owner may be told.
    assert not await service.deliver(bob.user.id, _note("Secret is cheaper", hidden))
    assert await service.deliver(alice.user.id, _note("Secret is cheaper", hidden))
    assert await service.deliver(bob.user.id, _note("Harbour is cheaper", shown))
    assert await service.deliver(bob.user.id, _note("Gone soon is cheaper", doomed))
    assert [n.item_status for n in (await inbox.inbox_batch(bob)).notices] == [
        NoticeItemStatus.AVAILABLE,
        NoticeItemStatus.AVAILABLE,
    ]

    await edit_item(alice, shown, public=False)
    await delete_items(alice, [doomed])
    listed = {n.item_id: n for n in (await inbox.inbox_batch(bob)).notices}
    assert (listed[shown].item_status, listed[shown].text) == (
        NoticeItemStatus.PRIVATE,
        PRIVATE_TEXT,
    )
    assert (listed[doomed].item_status, listed[doomed].text) == (
        NoticeItemStatus.DELETED,
        DELETED_TEXT,
    )
    # Its owner still reads the notice about the private item in full.
    assert [n.text for n in (await inbox.inbox_batch(alice)).notices] == ["Secret is cheaper"]


async def test_notices_survive_a_restart_of_the_server(server_config: ServerConfig) -> None:
    first = PixmartServer(server_config)
    await first.start()
    try:
        session = await _connect(first)
        await session.create_account("bob", "password123")
        user = await session.login("bob", "password123")
        token = session.token
        await _service(first).deliver(user.id, _note("kept across restarts"))
        await _service(first).deliver(user.id, _note("read before the restart"))
        await inbox.mark_read(session, [(await inbox.inbox_batch(session)).notices[0].id])
        await session.close()
    finally:
        await first.stop()

    second = PixmartServer(server_config)
    await second.start()
    try:
        session = await _connect(second, token=token)
        batch = await inbox.inbox_batch(session)
        assert [(n.text, n.read) for n in batch.notices] == [
            ("read before the restart", True),
            ("kept across restarts", False),
        ]
        assert batch.unread == 1
        await session.close()
    finally:
        await second.stop()


async def _connect(server: PixmartServer, **kwargs: object) -> Session:
    session = Session(
        f"wss://127.0.0.1:{server.port}",
        TrustPolicy(fingerprint=server.fingerprint),
        backoff=TEST_BACKOFF,
        **kwargs,  # type: ignore[arg-type]
    )
    await session.connect()
    return session
