"""Favourites and the inbox across server instances: two servers on one PostgreSQL database.

A price drop made on instance B is told once (by B, which made the edit) to every keeper, and a
keeper's device on instance A hears the new notice and its unread count live; marking read on B
reaches the device on A too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from backend.config import Limits, ServerConfig, SessionPolicy
from backend.server import PixmartServer
from protocol import favourites_client as fav
from protocol import inbox_client as inbox
from protocol.catalogue_client import edit_item
from protocol.client import Session
from protocol.messages.inbox import InboxChanged, NoticeKind
from tests.support import pinned_session, running_server
from tests.support.commerce import PASSWORD, EventLog, list_item


def _config(pg_url: str, data_dir: Path) -> ServerConfig:
    return ServerConfig(
        database=pg_url,
        data_dir=data_dir,
        port=0,
        enable_vision=False,
        limits=Limits(max_unauthenticated_per_address=1_000),
        sessions=SessionPolicy(max_accounts_per_address=10_000, max_accounts_total=10_000),
    )


@pytest.fixture
async def pair(
    pg_url: str, tmp_path: Path
) -> AsyncIterator[tuple[AsyncExitStack, list[PixmartServer]]]:
    """Instances A and B on one fresh PostgreSQL database, each with a data dir of its own."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_server(_config(pg_url, tmp_path / "a")))
        b = await stack.enter_async_context(running_server(_config(pg_url, tmp_path / "b")))
        yield stack, [a, b]


async def _user(
    stack: AsyncExitStack, server: PixmartServer, name: str, *, new: bool = True
) -> Session:
    session = await stack.enter_async_context(pinned_session(server))
    if new:
        await session.create_account(name, PASSWORD)
    await session.login(name, PASSWORD)
    return session


async def test_a_price_drop_on_one_instance_is_told_once_and_heard_on_the_other(
    pair: tuple[AsyncExitStack, list[PixmartServer]], tmp_path: Path
) -> None:
    stack, (a, b) = pair
    seller = await _user(stack, b, "seller")
    laptop = await _user(stack, a, "buyer")
    phone = await _user(stack, a, "buyer", new=False)
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

    on_b = await _user(stack, b, "buyer", new=False)
    await inbox.mark_all_read(on_b)
    await phones.wait_for(InboxChanged, lambda e: e.unread == 0)
