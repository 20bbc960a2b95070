"""The alert backlog on SQLite and PostgreSQL: items are queued by the transaction that writes
them, each entry is settled with its item's alerts and notices in one transaction (or not at
all), a full backlog counts what it drops, and an item not yet embedded waits for its picture.

Users and items are written with plain SQL (the catalogue has its own suites).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import numpy as np
import pytest
from numpy.typing import NDArray

from backend.alerts.matching import DIMENSIONS, AlertMatcher
from backend.alerts.repositories import alert_repository
from backend.alerts.repository import (
    ItemProbe,
    Match,
    SearchDraft,
    SearchLimits,
    Settle,
    WordToken,
)
from backend.events import EventHub
from backend.inbox.notices import NewNotice
from backend.inbox.repositories import inbox_repository
from backend.inbox.service import InboxService
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from backend.vision.service import VisionService
from protocol.messages.inbox import NoticeKind
from tests.contract.test_commerce_repository import T0, Store

LIMITS = SearchLimits(per_user=10, total=100, pictures=10)
MODEL = "m1"


def _unit(*head: float) -> NDArray[np.float32]:
    vector = np.zeros(DIMENSIONS, np.float32)
    vector[: len(head)] = head
    return vector / np.linalg.norm(vector)


def _draft(
    user_id: int, *, word: str | None = None, like: NDArray[np.float32] | None = None
) -> SearchDraft:
    return SearchDraft(
        user_id=user_id,
        filters_json=b'{"text": "%s"}' % (word or "").encode(),
        owner_id=None,
        min_price_cents=None,
        max_price_cents=None,
        in_stock=False,
        tags=(),
        words=(WordToken(word, False),) if word else (),
        like_label="the example" if like is not None else None,
        like_vector=like,
        like_model=MODEL if like is not None else None,
        min_similarity=90 if like is not None else None,
    )


async def _backlog(store: Store) -> list[tuple[int, int]]:
    rows = await store.read("SELECT item_id, version FROM alert_backlog ORDER BY item_id")
    return [(int(row["item_id"]), int(row["version"])) for row in rows]


async def _alerts(store: Store, user_id: int) -> list[tuple[int | None, str]]:
    rows = await store.read(
        "SELECT item_id, text FROM notices WHERE user_id = ? AND kind = ? ORDER BY id",
        user_id,
        NoticeKind.ALERT_MATCH.value,
    )
    return [(row["item_id"], str(row["text"])) for row in rows]


def _inbox(engine: StorageEngine) -> InboxService:
    async def secret() -> bytes:
        return b"\x00" * 32

    return InboxService(
        inbox_repository(engine), EventHub(), secret, batch_default=24, batch_max=100
    )


class _Vision:
    """Stands in for the vision service: warming until :meth:`ready`, then items' vectors."""

    model_version = MODEL

    def __init__(self) -> None:
        self.state = "warming"
        self.index = self
        self.vectors: dict[int, NDArray[np.float32]] = {}
        self._ready = asyncio.Event()

    def ready(self) -> None:
        self.state = "ready"
        self._ready.set()

    async def wait_ready(self) -> str:
        await self._ready.wait()
        return self.state

    async def vector_of(self, item_id: int) -> NDArray[np.float32] | None:
        return self.vectors.get(item_id)


def _matcher(engine: StorageEngine, vision: _Vision | None = None, **options: Any) -> AlertMatcher:
    return AlertMatcher(
        alert_repository(engine),
        _inbox(engine),
        lambda: cast(VisionService, vision) if vision is not None else None,
        currency="EUR",
        **options,
    )


async def _until(condition: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not reached in time")


async def test_the_item_write_queues_it_and_each_relevant_change_raises_its_version(
    engine: StorageEngine,
) -> None:
    store = Store(engine)
    seller = await store.user("seller")
    item = await store.item(seller, "Sunset", stock=5)
    assert await _backlog(store) == [(item, 1)]

    await store.edit(item, title="Sunset, framed")
    assert await _backlog(store) == [(item, 2)]  # still one entry
    await store.edit(item, stock=4)  # a sale: no search can newly match
    await store.edit(item, updated_at=T0 + 1)  # nor after a touch of other columns
    assert await _backlog(store) == [(item, 2)]
    await store.edit(item, stock=9)
    await store.edit(item, public=False)
    assert await _backlog(store) == [(item, 4)]


async def test_an_entry_goes_with_its_notices_in_one_transaction(engine: StorageEngine) -> None:
    store, repository = Store(engine), alert_repository(engine)
    seller, buyer = await store.user("seller"), await store.user("buyer")
    await repository.add(_draft(buyer, word="sunset"), T0, LIMITS)
    item = await store.item(seller, "Sunset")
    [entry] = await repository.due(10)
    facts = await repository.item_facts(item)
    assert facts is not None
    probe = ItemProbe(facts, ("sunset",), ("s", "su", "sun", "suns", "sunse", "sunset"), ())

    def failing(found: Match) -> NewNotice:
        raise RuntimeError("the notice could not be written")

    # A failure before the commit leaves the entry and records nothing: matched again later.
    with pytest.raises(RuntimeError):
        await repository.record_matches(probe, T0, failing, keep=10, settle=Settle(entry))
    assert await _backlog(store) == [(item, 1)]
    assert await store.read("SELECT * FROM alert_matches") == []

    # An entry read before its item changed is not this matching's to settle.
    await store.edit(item, title="Sunset again")
    assert await repository.record_matches(probe, T0, _note, keep=10, settle=Settle(entry)) is None
    assert await _backlog(store) == [(item, 2)]

    [entry] = await repository.due(10)
    recorded = await repository.record_matches(probe, T0, _note, keep=10, settle=Settle(entry))
    assert recorded is not None
    assert [m.user_id for m in recorded.matches] == [buyer]
    assert [d.notice.user_id for d in recorded.delivered] == [buyer]
    assert await _backlog(store) == []
    assert await _alerts(store, buyer) == [(None, "alert")]

    # Settled: a second settling of the same entry writes nothing.
    assert await repository.record_matches(probe, T0, _note, keep=10, settle=Settle(entry)) is None
    assert await _alerts(store, buyer) == [(None, "alert")]


def _note(found: Match) -> NewNotice:
    return NewNotice(kind=NoticeKind.ALERT_MATCH, text="alert", item_id=None)


async def test_on_postgresql_an_entry_being_settled_is_skipped(engine: StorageEngine) -> None:
    if not isinstance(engine, PostgresDatabase):
        pytest.skip("a SQLite database has one server, which settles entries one at a time")
    store, repository = Store(engine), alert_repository(engine)
    seller = await store.user("seller")
    item = await store.item(seller)
    [entry] = await repository.due(10)
    facts = await repository.item_facts(item)
    assert facts is not None
    probe = ItemProbe(facts, (), (), ())
    async with engine.transaction() as other:  # another instance, settling it now
        await other.execute("SELECT 1 FROM alert_backlog WHERE item_id = $1 FOR UPDATE", item)
        assert await repository.due(10) == []
        settle = Settle(entry)
        assert await repository.record_matches(probe, T0, _note, keep=10, settle=settle) is None
    assert [e.item_id for e in await repository.due(10)] == [item]  # released: due again


async def test_a_full_backlog_drops_new_items_counts_them_and_the_drain_says_so(
    engine: StorageEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store, repository = Store(engine), alert_repository(engine)
    await store.write("UPDATE alert_backlog_state SET capacity = 2")
    seller = await store.user("seller")
    first, second, third = [await store.item(seller) for _ in range(3)]
    assert [item for item, _ in await _backlog(store)] == [first, second]
    await store.edit(first, title="Changed")  # a queued item is still marked changed
    assert (first, 2) in await _backlog(store)

    matcher = _matcher(engine)
    with caplog.at_level(logging.WARNING, logger="backend.alerts.backlog"):
        await matcher.start()
        try:
            await matcher.idle()
        finally:
            await matcher.stop()
    assert await _backlog(store) == []
    assert (
        "the alert backlog was full (2 items); 1 new or changed items were not queued for"
        f" matching and alert nobody (the last: item {third})"
    ) in caplog.text
    assert await repository.take_overflow() is None  # counted once


async def test_an_item_not_yet_embedded_is_matched_by_picture_once_it_is(
    engine: StorageEngine,
) -> None:
    store, repository = Store(engine), alert_repository(engine)
    seller, buyer = await store.user("seller"), await store.user("buyer")
    await repository.add(_draft(buyer, word="sunset"), T0, LIMITS)
    await repository.add(_draft(buyer, like=_unit(1, 0)), T0, LIMITS)
    vision = _Vision()
    matcher = _matcher(engine, vision)
    await matcher.start()
    try:
        # Uploaded while the model warms up: its words alert now, its entry waits.
        item = await store.item(seller, "Sunset")
        matcher.wake()
        await matcher.idle()
        [(alerted, text)] = await _alerts(store, buyer)
        assert alerted == item and "sunset" in text and "looks" not in text
        assert await _backlog(store) == [(item, 1)]

        # The model is ready and the item embedded: the picture search alerts, once.
        vision.vectors[item] = _unit(1, 0.1)
        vision.ready()

        async def settled() -> bool:
            return await _backlog(store) == []

        await _until(settled)
        alerts = await _alerts(store, buyer)
        assert len(alerts) == 2 and "like the example" in alerts[1][1]
    finally:
        await matcher.stop()


async def test_an_item_that_stays_unembedded_is_given_up_by_the_picture_searches(
    engine: StorageEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store, repository = Store(engine), alert_repository(engine)
    seller, buyer = await store.user("seller"), await store.user("buyer")
    await repository.add(_draft(buyer, like=_unit(1, 0)), T0, LIMITS)
    vision = _Vision()
    vision.ready()
    matcher = _matcher(engine, vision, picture_wait=0.0)
    item = await store.item(seller, "Sunset")
    with caplog.at_level(logging.INFO, logger="backend.alerts.matching"):
        await matcher.start()
        try:

            async def loaded() -> bool:
                return len(matcher.pictures) == 1

            await _until(loaded)
            await matcher.idle()
        finally:
            await matcher.stop()
    assert await _backlog(store) == []  # not kept waiting past the bound
    assert await _alerts(store, buyer) == []
    assert f"item {item} had no embedding after" in caplog.text
