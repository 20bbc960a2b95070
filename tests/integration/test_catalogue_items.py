"""One item: details, edits, bulk deletes and downloads of the original in ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backend.server import PixmartServer
from protocol.catalogue_client import browse, delete_items, edit_item, get_item
from protocol.errors import BadRequest, ErrorCode, NotFound
from protocol.messages.catalogue import GetOriginal, ListingFilters, OriginalData
from tests.conftest import SessionFactory, logged_in
from tests.support.catalogue import catalogue, jpeg, stored, upload


async def test_owners_edit_every_field_but_the_picture(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(40)
    before = (await upload(alice, tmp_path, data, "Old title", tags=["old"])).item
    card = await edit_item(
        alice,
        before.id,
        title="  Shiny new title ",
        description="Line one\nLine two\twith a tab",
        price_cents=4999,
        stock=0,
        tags=["New", "fresh-tag"],
        public=False,
    )
    assert (card.title, card.price_cents, card.stock, card.public) == (
        "Shiny new title",
        4999,
        0,
        False,
    )
    assert card.tags == ["fresh-tag", "new"]
    detail = await get_item(alice, before.id)
    assert detail.description == "Line one\nLine two\twith a tab"
    assert detail.sha256 == hashlib.sha256(data).hexdigest()
    assert detail.updated_at >= detail.created_at == before.created_at
    # The text index follows title and tags.
    assert [c.id for c in (await browse(alice, ListingFilters(text="shiny"))).items] == [card.id]
    assert (await browse(alice, ListingFilters(text="old"))).items == []
    assert (await browse(alice, ListingFilters(text="fresh"))).total == 1
    # Fields left out are kept.
    assert (await edit_item(alice, card.id, stock=2)).price_cents == 4999


@pytest.mark.parametrize(
    "change",
    [
        {"title": ""},
        {"title": "Bell \x07"},
        {"description": "Escape \x1b]0;pwned\x07"},
        {"tags": ["ok", "not ok"]},
        {"tags": [""]},
    ],
)
async def test_invalid_edits_change_nothing(
    make_session: SessionFactory, tmp_path: Path, change: dict[str, object]
) -> None:
    alice = await logged_in(make_session, "alice")
    item = (await upload(alice, tmp_path, jpeg(41), "Stable", tags=["kept"])).item
    with pytest.raises(BadRequest):
        await edit_item(alice, item.id, price_cents=1, **change)  # type: ignore[arg-type]
    detail = await get_item(alice, item.id)
    assert (detail.title, detail.tags, detail.price_cents) == ("Stable", ["kept"], 0)


async def test_bulk_delete_reports_each_id(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    mine = [(await upload(alice, tmp_path, jpeg(42 + i))).item.id for i in range(3)]
    theirs = (await upload(bob, tmp_path, jpeg(50))).item.id
    results = await delete_items(alice, [mine[0], theirs, 987_654, mine[1], mine[0]])
    assert [(r.item_id, r.error) for r in results] == [
        (mine[0], None),
        (theirs, ErrorCode.FORBIDDEN),
        (987_654, ErrorCode.NOT_FOUND),
        (mine[1], None),
        (mine[0], None),
    ]
    remaining = {card.id for card in (await browse(alice)).items}
    assert remaining == {mine[2], theirs}
    with pytest.raises(NotFound):
        await get_item(alice, mine[0])
    with pytest.raises(NotFound):
        await edit_item(alice, mine[1], title="Gone")
    assert (await stored(server)).pictures == 2


async def test_the_original_comes_in_ranges(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(51, (160, 120))
    item = (await upload(alice, tmp_path, data)).item
    part = await alice.request(GetOriginal(item_id=item.id, offset=10, length=100), OriginalData)
    assert part.data == data[10:110] and part.total == len(data) and not part.stripped
    tail = await alice.request(GetOriginal(item_id=item.id, offset=len(data) - 5), OriginalData)
    assert tail.data == data[-5:]
    with pytest.raises(BadRequest):
        await alice.request(GetOriginal(item_id=item.id, offset=len(data) + 1), OriginalData)
    # One reply never carries more than the service's slice, far under the message limit.
    service = catalogue(server)
    service.original_chunk_bytes = 1000
    whole = await alice.request(GetOriginal(item_id=item.id, length=10**9), OriginalData)
    assert len(whole.data) == 1000
