"""Saved searches that alert, over a real server (both engines): an item listed or edited to
match a saved search sends its owner one inbox notice, never one about an item they may not see,
never a second one for the same item; bounds and authorisation hold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from backend.alerts.repository import SearchLimits
from backend.server import PixmartServer
from protocol import inbox_client as inbox
from protocol.alerts_client import remove_saved_search, save_search, saved_searches
from protocol.catalogue_client import edit_item, upload_file
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, NotFound, Unavailable
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from protocol.messages.inbox import NoticeKind
from tests.conftest import SessionFactory, logged_in
from tests.support.commerce import write_picture


async def _list(session: Session, directory: Path, title: str, **fields: object) -> int:
    metadata = ItemMetadata(title=title, **fields)  # type: ignore[arg-type]
    created = await upload_file(session, write_picture(directory), metadata)
    return created.item.id


async def _alerts(server: PixmartServer, session: Session) -> list[tuple[int | None, str]]:
    """The alert notices in ``session``'s inbox, oldest first, once matching is done."""
    assert server.domains is not None
    await server.domains.alerts.matcher.idle()
    notices = (await inbox.inbox_batch(session, limit=100)).notices
    return [(n.item_id, n.text) for n in reversed(notices) if n.kind is NoticeKind.ALERT_MATCH]


async def test_a_matching_upload_alerts_the_searcher_once(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    buyer = await logged_in(make_session, "buyer")
    seller = await logged_in(make_session, "seller")
    await save_search(
        buyer,
        ListingFilters(text="golden sun", tags=["Print"], max_price_cents=2000, in_stock=True),
    )

    matching = await _list(
        seller, tmp_path, "Golden sunset", tags=["print", "sky"], price_cents=1500, stock=2
    )
    await _list(seller, tmp_path, "Golden sunset", tags=["sky"], price_cents=1500)  # no tag
    await _list(seller, tmp_path, "Golden sunset", tags=["print"], price_cents=2500)  # dear
    await _list(seller, tmp_path, "Golden sunset", tags=["print"], stock=0)  # sold out
    await _list(seller, tmp_path, "Golden hour", tags=["print"], price_cents=100)  # words

    alerts = await _alerts(server, buyer)
    assert [item for item, _ in alerts] == [matching]
    assert "“Golden sunset” matches your saved search" in alerts[0][1]

    # Edits of an item that alerted already do not alert again.
    await edit_item(seller, matching, price_cents=1400)
    await edit_item(seller, matching, title="Golden sunset, framed")
    assert [item for item, _ in await _alerts(server, buyer)] == [matching]


async def test_an_edit_that_makes_an_item_match_alerts(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    buyer = await logged_in(make_session, "buyer")
    seller = await logged_in(make_session, "seller")
    await save_search(buyer, ListingFilters(tags=["cat"], max_price_cents=1000))
    item = await _list(seller, tmp_path, "Tabby", tags=["cat"], price_cents=3000)
    assert await _alerts(server, buyer) == []

    await edit_item(seller, item, price_cents=900)
    assert [i for i, _ in await _alerts(server, buyer)] == [item]


async def test_no_alert_about_an_item_the_searcher_may_not_see(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    buyer = await logged_in(make_session, "buyer")
    seller = await logged_in(make_session, "seller")
    await save_search(buyer, ListingFilters(text="secret"))
    await save_search(seller, ListingFilters(text="secret"))

    private = await _list(seller, tmp_path, "Secret garden", public=False)
    # The seller's own search sees their private item; nobody else's does.
    assert await _alerts(server, buyer) == []
    assert [i for i, _ in await _alerts(server, seller)] == [private]

    # An edit that keeps it private changes nothing; making it public tells the buyer.
    await edit_item(seller, private, title="Secret garden at dusk")
    assert await _alerts(server, buyer) == []
    await edit_item(seller, private, public=True)
    assert [i for i, _ in await _alerts(server, buyer)] == [private]


async def test_the_last_word_is_a_prefix_and_the_others_whole(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    buyer = await logged_in(make_session, "buyer")
    seller = await logged_in(make_session, "seller")
    await save_search(buyer, ListingFilters(text="blue oce"))
    hit = await _list(seller, tmp_path, "Blue ocean")
    await _list(seller, tmp_path, "Blueish ocean")  # "blue" is a whole word
    in_tags = await _list(seller, tmp_path, "Waves", tags=["blue", "oceanic"])
    in_text = await _list(seller, tmp_path, "Waves", description="A BLUE Océan at noon")
    assert [i for i, _ in await _alerts(server, buyer)] == [hit, in_tags, in_text]


async def test_searches_are_listed_and_removed_by_their_owner_only(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    mallory = await logged_in(make_session, "mallory")
    saved = await save_search(alice, ListingFilters(text="  fox ", tags=["Wild-Life"], mine=False))
    assert saved.filters == ListingFilters(text="fox", tags=["wild-life"])

    assert (await saved_searches(mallory)).searches == []
    with pytest.raises(NotFound):
        await remove_saved_search(mallory, saved.id)
    listed = await saved_searches(alice)
    assert [s.id for s in listed.searches] == [saved.id] and listed.limit == 100

    await remove_saved_search(alice, saved.id)
    assert (await saved_searches(alice)).searches == []
    seller = await logged_in(make_session, "seller")
    await _list(seller, tmp_path, "Fox", tags=["wild-life"])
    assert await _alerts(server, alice) == []


async def test_bad_searches_are_refused(make_session: SessionFactory) -> None:
    alice = await logged_in(make_session, "alice")
    with pytest.raises(BadRequest, match="what to look for"):
        await save_search(alice, ListingFilters())
    with pytest.raises(BadRequest, match="price"):
        await save_search(alice, ListingFilters(min_price_cents=500, max_price_cents=100))
    with pytest.raises(BadRequest, match="letters or digits"):
        await save_search(alice, ListingFilters(text="!!! ..."))
    with pytest.raises(BadRequest, match="similarity"):
        await save_search(alice, ListingFilters(text="fox"), min_similarity=80)
    # This server runs without its image model.
    with pytest.raises(Unavailable):
        await save_search(alice, like_item_id=1)


async def test_saved_searches_are_bounded_per_user_and_per_shop(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    assert server.domains is not None
    service = server.domains.alerts.service
    service.limits = replace(service.limits, per_user=3, total=5)
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    for n in range(3):
        await save_search(alice, ListingFilters(text=f"word{n}"))
    with pytest.raises(Conflict, match="remove one first"):
        await save_search(alice, ListingFilters(text="more"))
    await save_search(bob, ListingFilters(text="one"))
    await save_search(bob, ListingFilters(text="two"))
    with pytest.raises(Conflict, match="shop keeps"):
        await save_search(bob, ListingFilters(text="three"))
    assert len((await saved_searches(alice)).searches) == 3
    assert isinstance(service.limits, SearchLimits)
