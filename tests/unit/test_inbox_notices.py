"""Unit tests of the inbox's pure parts: what a notice stores and shows, which item changes a
favourite's keepers hear of, and the bound on notices waiting for another instance's facts."""

from __future__ import annotations

import asyncio

import pytest

from backend.catalogue.repository import ItemRow
from backend.events import EventHub
from backend.favourites.notifier import notice_for_change
from backend.inbox.live import MAX_WAITING, InboxChangedFact, InboxRefresher
from backend.inbox.notices import (
    DELETED_TEXT,
    MAX_TEXT,
    PRIVATE_TEXT,
    NewNotice,
    StoredNotice,
)
from protocol.messages.catalogue import ItemCard
from protocol.messages.inbox import NoticeItemStatus, NoticeKind


def _stored(**changes: object) -> StoredNotice:
    fields: dict[str, object] = {
        "id": 7,
        "user_id": 2,
        "kind": "price_drop",
        "item_id": 42,
        "text": "'Dunes' now costs €5.00 (was €7.00)",
        "created_at": 1.0,
        "read": False,
        "item_exists": True,
        "item_visible": True,
    }
    fields.update(changes)
    return StoredNotice(**fields)  # type: ignore[arg-type]


def test_a_notice_is_one_line_of_shown_characters_cut_to_its_bound() -> None:
    text = "Red\u202e kite\x1b[2J is\n\tback \u200bin stock"
    assert (
        NewNotice(NoticeKind.BACK_IN_STOCK, text).clipped_text() == "Red kite[2J is back in stock"
    )
    long = NewNotice(NoticeKind.ALERT_MATCH, "x" * (MAX_TEXT + 50)).clipped_text()
    assert len(long) == MAX_TEXT and long.endswith("…")


@pytest.mark.parametrize(
    ("exists", "visible", "status", "text"),
    [
        (True, True, NoticeItemStatus.AVAILABLE, "'Dunes' now costs €5.00 (was €7.00)"),
        (True, False, NoticeItemStatus.PRIVATE, PRIVATE_TEXT),
        (False, False, NoticeItemStatus.DELETED, DELETED_TEXT),
        (False, True, NoticeItemStatus.DELETED, DELETED_TEXT),  # an admin: still deleted
    ],
)
def test_a_notice_shows_its_text_only_while_its_item_may_be_seen(
    exists: bool, visible: bool, status: NoticeItemStatus, text: str
) -> None:
    view = _stored(item_exists=exists, item_visible=visible).view()
    assert (view.item_status, view.text, view.kind) == (status, text, NoticeKind.PRICE_DROP)


def test_a_notice_about_no_item_has_no_item_status() -> None:
    view = _stored(item_id=None, item_exists=False, item_visible=False, text="Hello").view()
    assert (view.item_status, view.text) == (None, "Hello")


def _before(price: int, stock: int) -> ItemRow:
    return ItemRow(
        id=42,
        owner_id=1,
        public=True,
        sha256="0" * 64,
        title="Dunes",
        price_cents=price,
        stock=stock,
    )


def _after(price: int, stock: int) -> ItemCard:
    return ItemCard(
        id=42,
        title="Dunes",
        price_cents=price,
        stock=stock,
        public=True,
        owner_id=1,
        owner_name="ada",
        tags=[],
        width=8,
        height=8,
        created_at=0.0,
    )


def test_only_a_cheaper_price_or_stock_back_from_none_is_news() -> None:
    assert notice_for_change(_before(700, 3), _after(800, 3), "EUR") is None
    assert notice_for_change(_before(700, 3), _after(700, 1), "EUR") is None
    assert notice_for_change(_before(700, 2), _after(700, 5), "EUR") is None
    cheaper = notice_for_change(_before(700, 3), _after(500, 3), "EUR")
    assert cheaper == NewNotice(
        NoticeKind.PRICE_DROP, "'Dunes' now costs €5.00 (was €7.00)", item_id=42
    )
    back = notice_for_change(_before(700, 0), _after(500, 4), "EUR")
    assert back == NewNotice(
        NoticeKind.BACK_IN_STOCK,
        "'Dunes' is back in stock (4 left), now €5.00 (was €7.00)",
        item_id=42,
    )


class _Connection:
    """What the hub needs of a subscriber here: its topics, and no user (so it hears nothing)."""

    def __init__(self) -> None:
        self.topics: set[str] = set()
        self.principal = None
        self.user_id = None


async def test_facts_waiting_for_one_user_are_bounded() -> None:
    hub = EventHub()
    loaded: list[int] = []

    async def notice(notice_id: int) -> None:
        loaded.append(notice_id)

    async def unread(_user_id: int) -> int:
        return 0

    refresher = InboxRefresher(hub, notice, unread)
    # Nobody here shows user 3's inbox: nothing is loaded.
    refresher.receive(InboxChangedFact(user_id=3, notice_id=1))
    await asyncio.sleep(0)
    assert loaded == []
    listener = _Connection()
    hub.attach(listener)  # type: ignore[arg-type]  # the hub subscribes open connections only
    hub.subscribe(listener, "inbox:3")  # type: ignore[arg-type]
    # A flood arrives before the first load runs: only the first MAX_WAITING are read.
    for notice_id in range(1, MAX_WAITING * 3):
        refresher.receive(InboxChangedFact(user_id=3, notice_id=notice_id))
    for _ in range(MAX_WAITING * 4):
        await asyncio.sleep(0)
    assert loaded == list(range(1, MAX_WAITING + 1))
    await refresher.close()
