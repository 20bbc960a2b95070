"""Favourites and the inbox across server instances: two servers on one PostgreSQL database.

A price drop made on instance B is told once (by B, which made the edit) to every keeper, and a
keeper's device on instance A hears the new notice and its unread count live; marking read on B
reaches the device on A too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import favourites_client as fav
from protocol import inbox_client as inbox
from protocol.catalogue_client import edit_item
from protocol.messages.inbox import InboxChanged, NoticeKind
from tests.support.commerce import EventLog, list_item
from tests.support.two_instances import Cluster


async def test_a_price_drop_on_one_instance_is_told_once_and_heard_on_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.a, cluster.b
    seller = await cluster.user(b, "seller")
    laptop = await cluster.user(a, "buyer")
    phone = await cluster.user(a, "buyer", new=False)
    item = await list_item(seller, tmp_path, title="Harbour", price_cents=900)
    await fav.add_favourite(laptop, item)
    assert await inbox.unread_count(phone) == 0
    phones = EventLog(phone)

    await edit_item(seller, item, price_cents=800)

    heard = await phones.wait_for(InboxChanged, lambda e: e.notice is not None)
    assert heard.unread == 1 and heard.notice is not None
    assert heard.notice.kind is NoticeKind.PRICE_DROP and heard.notice.item_id == item
    await asyncio.sleep(0.3)  # time for a second notice, if any instance sent one
    notices = (await inbox.inbox_batch(laptop)).notices
    assert [n.kind for n in notices] == [NoticeKind.PRICE_DROP]
    assert len([e for e in phones.of(InboxChanged) if e.notice is not None]) == 1

    on_b = await cluster.user(b, "buyer", new=False)
    await inbox.mark_all_read(on_b)
    await phones.wait_for(InboxChanged, lambda e: e.unread == 0)
