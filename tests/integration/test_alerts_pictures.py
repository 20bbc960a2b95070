"""Picture searches that alert, with the real image model (both engines): an upload that looks
like the example alerts, one that does not stays silent, a private one alerts nobody but its
seller, and the matrix is kept in step as searches come and go."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from backend.alerts.service import DEFAULT_MIN_SIMILARITY
from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol import inbox_client as inbox
from protocol.alerts_client import remove_saved_search, save_search
from protocol.catalogue_client import upload_file
from protocol.client import Session
from protocol.errors import BadRequest, NotFound
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from protocol.messages.inbox import NoticeKind
from protocol.vision_client import search_by_picture
from tests.conftest import SessionFactory, logged_in
from tests.unit.vision_fixtures import jpeg_of, shared_cache_dir


@pytest.fixture
def server_config(
    server_config: ServerConfig, tmp_path_factory: pytest.TempPathFactory
) -> ServerConfig:
    """The image model on, with the converted model shared by the whole test session."""
    return replace(
        server_config, enable_vision=True, model_cache_dir=shared_cache_dir(tmp_path_factory)
    )


async def _upload(session: Session, tmp_path: Path, name: str, **fields: object) -> int:
    path = tmp_path / f"{name}-{len(fields)}.jpg"
    path.write_bytes(jpeg_of(name))
    metadata = ItemMetadata(title=name.title(), price_cents=500, **fields)  # type: ignore[arg-type]
    return (await upload_file(session, path, metadata)).item.id


async def _alerted(server: PixmartServer, session: Session) -> list[int | None]:
    assert server.domains is not None
    await server.domains.alerts.matcher.idle()
    notices = (await inbox.inbox_batch(session, limit=100)).notices
    return [n.item_id for n in reversed(notices) if n.kind is NoticeKind.ALERT_MATCH]


async def test_an_upload_that_looks_like_the_example_alerts(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    buyer = await logged_in(make_session, "buyer")
    seller = await logged_in(make_session, "seller")
    example = jpeg_of("chelsea", brighten=1.2, quality=50)
    cats = await save_search(buyer, like_image=example, like_label="cat.jpg", min_similarity=75)
    assert (cats.like_label, cats.min_similarity) == ("cat.jpg", 75)
    # A picture search with a filter: the price must fit too.
    await save_search(
        buyer, ListingFilters(max_price_cents=100), like_image=example, min_similarity=75
    )

    await _upload(seller, tmp_path, "coffee")
    cat = await _upload(seller, tmp_path, "chelsea")
    assert await _alerted(server, buyer) == [cat]
    notice = (await inbox.inbox_batch(buyer)).notices[0]
    assert "looks" in notice.text and "like cat.jpg" in notice.text

    # The private twin of the cat, by another seller: only its seller may hear of it.
    other = await logged_in(make_session, "other")
    await save_search(other, like_image=example, min_similarity=75)
    hidden = await _upload(other, tmp_path, "chelsea", public=False)
    assert await _alerted(server, buyer) == [cat]
    assert await _alerted(server, other) == [hidden]


async def test_searches_saved_from_a_running_search_or_an_item(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    buyer = await logged_in(make_session, "buyer")
    seller = await logged_in(make_session, "seller")
    rocket = await _upload(seller, tmp_path, "rocket")
    running = await search_by_picture(buyer, jpeg_of("astronaut"), limit=1)
    assert running.query_id is not None
    by_query = await save_search(buyer, like_query_id=running.query_id, min_similarity=90)
    by_item = await save_search(buyer, like_item_id=rocket, like_label="the rocket")
    assert by_item.min_similarity == DEFAULT_MIN_SIMILARITY and by_item.like_label == "the rocket"
    assert server.domains is not None
    pictures = server.domains.alerts.matcher.pictures
    assert by_query.id in pictures and by_item.id in pictures

    await remove_saved_search(buyer, by_query.id)
    assert by_query.id not in pictures and by_item.id in pictures

    # Another's private item cannot be an example, nor can two examples be given.
    secret = await _upload(seller, tmp_path, "camera", public=False)
    with pytest.raises(NotFound):
        await save_search(buyer, like_item_id=secret)
    with pytest.raises(BadRequest, match="one example"):
        await save_search(buyer, like_item_id=rocket, like_query_id=running.query_id)
