"""Provides Pilot tests of the vision parts of the TUI against a real server WITH the image model.

Proves: search by picture goes through the picker (a tree of pictures only, a path field that Tab
completes) and ends with the matching item first, its similarity on the card, batches on demand
and the form's filters applied; "Similar" on an item lists its look-alikes and a strip of the
closest shows under it; an upload names the items it looks very like and offers the model's tags,
of which only the accepted ones are added. One snapshot shows the similar-results screen.

The flows assert only what holds with a clear margin for any faithful quantisation of the model
(the matching item first, far above the rest; a near-duplicate over the threshold); the snapshot
shows fixed scores (:data:`SNAPSHOT_SCORES`), since the live ones follow the int8 model's numerics.
The model's real scores are checked with tolerances in ``tests/unit/test_vision_scores.py``.

Every server here runs the model; it is built once per test session (see
:func:`tests.ui.conftest.with_vision`). Sample pictures come from scikit-image (no download).
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from PIL import Image
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from backend.config import ServerConfig
from protocol.catalogue_client import get_item, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemCard, ItemMetadata, ListingFilters
from protocol.messages.vision import SimilarBatch
from protocol.trust import TrustPolicy
from protocol.vision_client import similar_to_item
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.ui.conftest import SIZE, AppFactory, type_text, until, with_vision
from tests.ui.snapshot_shop import SnapshotShop, comparer, open_shop, snapshot_config
from tests.ui.threaded_server import ThreadedServer
from tests.unit.vision_fixtures import jpeg_of
from tui.app import PixmartApp
from tui.data import similar as similar_data
from tui.data.similar import SimilarQuery, load_query_picture, similarity_label
from tui.dialogs import PickPictureDialog
from tui.dialogs.pick_picture import leaf
from tui.launch import build_app
from tui.screens import GalleryScreen, ItemScreen, SearchScreen, SimilarScreen, UploadScreen
from tui.store import ClientStore
from tui.widgets import (
    CatalogueView,
    ItemTile,
    Picture,
    PictureTree,
    SimilarStrip,
    TagChips,
    path_completions,
)
from tui.widgets.upload_queue import UploadRow

PERCENT = re.compile(r"^(\d+)% similar$")

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

#: What the seller lists: sample name → (title, tags). Chosen to look unlike one another.
CATALOGUE: dict[str, tuple[str, list[str]]] = {
    "chelsea": ("Chelsea the cat", ["animal"]),
    "coffee": ("Coffee", ["drink"]),
    "rocket": ("Rocket", ["space"]),
    "astronaut": ("Astronaut", ["space", "animal"]),
    "motorcycle": ("Motorcycle", ["road"]),
}


@pytest.fixture
def server_config(
    server_config: ServerConfig, tmp_path_factory: pytest.TempPathFactory
) -> ServerConfig:
    """Every server of this module runs the image model."""
    return with_vision(server_config, tmp_path_factory)


async def list_samples(session: Session, folder: Path) -> dict[str, ItemCard]:
    """List every sample of :data:`CATALOGUE` as the session's user, in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    cards: dict[str, ItemCard] = {}
    for name, (title, tags) in CATALOGUE.items():
        path = folder / f"{name}.jpg"
        path.write_bytes(jpeg_of(name))
        metadata = ItemMetadata(title=title, price_cents=500, stock=3, tags=tags)
        cards[name] = (await upload_file(session, path, metadata)).item
    return cards


@dataclass
class VisionShop:
    """A seller with the samples listed, and the app's saved session of that seller."""

    seller: Session
    cards: dict[str, ItemCard]


@pytest.fixture
async def vision_shop(
    make_session: SessionFactory, ui_store: ClientStore, tmp_path: Path
) -> VisionShop:
    """The samples listed by ``seller``, whose saved session the app resumes."""
    seller = await logged_in(make_session, "seller")
    cards = await list_samples(seller, tmp_path / "listed")
    assert seller.token is not None
    ui_store.save_token(seller.url, seller.token)
    return VisionShop(seller=seller, cards=cards)


def percent_of(tile: ItemTile) -> int:
    """The similarity written on a card's frame."""
    match = PERCENT.match(str(tile.border_subtitle))
    assert match, f"no percentage on {tile.card.title if tile.card else 'an empty card'}"
    return int(match.group(1))


def shown_tiles(app: PixmartApp, within: str = "") -> list[ItemTile]:
    tiles = app.screen.query(f"{within} ItemTile".strip()).results(ItemTile)
    return [tile for tile in tiles if tile.card is not None]


def status_of(app: PixmartApp) -> str:
    return str(app.screen.query_one("#listing-status", Static).render())


async def logged_in_app(pilot: Pilot[None], app: PixmartApp) -> None:
    await until(
        pilot,
        lambda: isinstance(app.screen, GalleryScreen) and bool(app.screen.query(CatalogueView)),
        what="the gallery",
    )
    view = app.screen.query_one(CatalogueView)
    await until(pilot, lambda: view.listing is not None and view.listing.batches > 0)


async def similar_results(pilot: Pilot[None], app: PixmartApp) -> CatalogueView:
    await until(
        pilot,
        lambda: isinstance(app.screen, SimilarScreen) and bool(app.screen.query(CatalogueView)),
        what="the results",
    )
    view = app.screen.query_one(CatalogueView)
    await until(
        pilot,
        lambda: view.listing is not None and view.listing.batches > 0 and not view.fetching,
        what="the first batch",
    )
    await pilot.pause()
    return view


# -- pure parts --------------------------------------------------------------------------------


def test_similarity_reads_as_a_percentage() -> None:
    assert similarity_label(0.934) == "93% similar"
    assert similarity_label(1.2) == "100% similar" and similarity_label(-0.1) == "0% similar"


def test_a_similar_query_names_its_example_and_filters() -> None:
    query = SimilarQuery(ListingFilters(tags=["cat"], in_stock=True), label="cat.jpg", picture=b"x")
    assert query.describe() == "like cat.jpg · tags: cat · in stock"
    with pytest.raises(ValueError):
        SimilarQuery(label="nothing")


def test_typed_paths_complete_to_folders_and_pictures_only(tmp_path: Path) -> None:
    for name in ("cat.jpg", "cattle.PNG", "car.txt", ".cache.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "tom.webp").write_bytes(b"x")
    assert path_completions("ca", tmp_path) == ["cat.jpg", "cats/", "cattle.PNG"]
    assert path_completions("cats/", tmp_path) == ["cats/tom.webp"]
    assert path_completions(f"{tmp_path}/cats/t", Path("/")) == [f"{tmp_path}/cats/tom.webp"]
    assert path_completions(".c", tmp_path) == [".cache.jpg"]
    assert path_completions("zz", tmp_path) == [] and path_completions("no/", tmp_path) == []
    assert leaf("photos/cats/") == "cats/" and leaf("a/cat.jpg") == "cat.jpg"


def test_search_pictures_are_sent_as_they_are_or_shrunk(tmp_path: Path) -> None:
    small = tmp_path / "small.jpg"
    small.write_bytes(jpeg_of("coffee"))
    assert load_query_picture(small, max_bytes=10**7, max_pixels=10**8) == small.read_bytes()
    shrunk = load_query_picture(small, max_bytes=1000, max_pixels=10**8)
    with Image.open(io.BytesIO(shrunk)) as picture:
        assert picture.format == "JPEG" and max(picture.size) <= 1024
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ValueError, match="not a picture"):
        load_query_picture(tmp_path / "notes.jpg", max_bytes=10**7, max_pixels=10**8)
    with pytest.raises(ValueError, match="does not exist"):
        load_query_picture(tmp_path / "gone.jpg", max_bytes=10**7, max_pixels=10**8)


# -- flows against the model -------------------------------------------------------------------


async def test_search_by_picture_via_the_picker_ranks_the_match_first(
    vision_shop: VisionShop, make_app: AppFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(jpeg_of("chelsea", brighten=1.15, quality=60))
    (folder / "notes.txt").write_text("not a picture")
    (folder / "holiday").mkdir()
    app = make_app(upload_root=folder, listing_batch=2)
    cat = vision_shop.cards["chelsea"]
    async with app.run_test(size=SIZE) as pilot:
        await logged_in_app(pilot, app)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), what="search")
        search = app.screen
        assert not search.query_one("#search-by-picture", Button).disabled
        await pilot.press("ctrl+b")
        await until(pilot, lambda: isinstance(app.screen, PickPictureDialog), what="the picker")
        tree = app.screen.query_one(PictureTree)
        await until(pilot, lambda: len(tree.root.children) == 2, what="the tree")
        assert sorted(str(node.label) for node in tree.root.children) == ["cat.jpg", "holiday"]
        await pilot.press("ctrl+l")
        await type_text(pilot, "ca")
        await pilot.press("tab")
        path_field = app.screen.query_one("#pick-path", Input)
        await until(pilot, lambda: path_field.value == "cat.jpg", what="the completion")
        await pilot.press("enter")

        view = await similar_results(pilot, app)
        tiles = shown_tiles(app)
        assert tiles[0].card is not None and tiles[0].card.id == cat.id
        assert percent_of(tiles[0]) >= 80
        assert all(percent_of(tile) < percent_of(tiles[0]) for tile in tiles[1:])
        assert status_of(app) == f"2 of {len(CATALOGUE)} · like cat.jpg"
        await pilot.press("n")  # the next batch only when asked
        await until(pilot, lambda: view.listing is not None and len(view.listing) == 4)
        assert status_of(app).startswith(f"4 of {len(CATALOGUE)} · like cat.jpg")

        # The form's filters apply; here the picture is picked in the tree.
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is search)
        search.query_one("#search-tags", Input).value = "space"
        await pilot.press("ctrl+b")
        await until(pilot, lambda: isinstance(app.screen, PickPictureDialog), what="the picker")
        tree = app.screen.query_one(PictureTree)
        await until(pilot, lambda: len(tree.root.children) == 2, what="the tree")
        tree.focus()
        tree.move_cursor(next(n for n in tree.root.children if str(n.label) == "cat.jpg"))
        await pilot.press("enter")
        view = await similar_results(pilot, app)
        assert view.listing is not None
        assert {card.id for card in view.listing.items} == {
            vision_shop.cards["rocket"].id,
            vision_shop.cards["astronaut"].id,
        }
        assert status_of(app) == "2 of 2 · like cat.jpg · tags: space"


async def test_similar_to_an_item_in_a_strip_and_in_full(
    vision_shop: VisionShop, make_app: AppFactory
) -> None:
    coffee = vision_shop.cards["coffee"]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await logged_in_app(pilot, app)
        app.open_item(coffee)
        await until(
            pilot,
            lambda: isinstance(app.screen, ItemScreen) and bool(app.screen.query(SimilarStrip)),
            what="the item",
        )
        item_screen = app.screen
        strip = item_screen.query_one(SimilarStrip)
        await until(pilot, lambda: strip.has_class("-shown"), what="the look-alikes")
        await pilot.pause()
        tiles = shown_tiles(app, "SimilarStrip")
        assert len(tiles) == len(CATALOGUE) - 1  # every other item, the item itself left out
        assert coffee.id not in {tile.card.id for tile in tiles if tile.card is not None}
        assert all(0 <= percent_of(tile) <= 100 for tile in tiles)
        first = tiles[0].card
        assert first is not None
        strip.grid.focus()
        await pilot.press("enter")  # opens the closest look-alike
        await until(pilot, lambda: app.screen is not item_screen, what="the look-alike")
        assert isinstance(app.screen, ItemScreen) and app.screen.item_id == first.id
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is item_screen)

        await pilot.press("s")
        view = await similar_results(pilot, app)
        assert view.listing is not None
        assert [card.id for card in view.listing.items] == [t.card.id for t in tiles if t.card]
        assert status_of(app) == f"{len(CATALOGUE) - 1} of {len(CATALOGUE) - 1} · like “Coffee”"
        assert all(PERCENT.match(str(tile.border_subtitle)) for tile in shown_tiles(app))
        await pilot.press("g")  # back to the gallery itself, past the results and the item
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")


async def test_upload_names_look_alikes_and_adds_only_accepted_tags(
    vision_shop: VisionShop, make_app: AppFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "to-sell"
    folder.mkdir()
    again = folder / "coffee-again.jpg"
    again.write_bytes(jpeg_of("coffee", quality=60))  # not the same file: listed, but named
    app = make_app(upload_root=folder)
    async with app.run_test(size=SIZE) as pilot:
        await logged_in_app(pilot, app)
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UploadScreen), what="upload")
        screen = app.screen
        assert isinstance(screen, UploadScreen)
        await screen.add(again)
        screen.query_one("#upload-price", Input).value = "4"
        screen.query_one("#upload-go", Button).focus()
        await pilot.press("enter")
        summary = screen.query_one("#upload-summary", Static)
        await until(pilot, lambda: "1 listed" in str(summary.render()), what="the summary")
        row = next(iter(screen.queue.values()))
        assert isinstance(row, UploadRow) and row.item is not None
        warnings = str(row.query_one(".warnings", Static).render())
        assert f"Looks very like item #{vision_shop.cards['coffee'].id} “Coffee”" in warnings
        assert "% similar" in warnings
        chips = row.query_one(TagChips)
        assert chips.has_focus  # Upload was pressed: the proposals come next
        offered = [suggestion.tag for suggestion in chips.suggestions]
        wanted = next(tag for tag in offered if "espresso" in tag or "cup" in tag)
        assert (await get_item(vision_shop.seller, row.item.id)).tags == []  # never by itself
        for _ in range(offered.index(wanted)):
            await pilot.press("right")
        await pilot.press("space", "enter")
        await until(pilot, lambda: chips.state == "added", what="the tags added")
        assert "Tags added" in str(chips.render())
    assert (await get_item(vision_shop.seller, row.item.id)).tags == [wanted]


# -- snapshot ----------------------------------------------------------------------------------

#: The scores the snapshot shows for the other samples when Coffee is the example, best first.
#: Fixed here rather than the model's: the live ones follow the int8 model's numerics, which move
#: by tenths of a point with the quantisation and with how the pictures decode (Motorcycle: 24.47%
#: with one quantisation, 24.56% with another, 24.57% in float32 Keras, 24.1-24.8% with a few
#: pixel values off by one), so "24%" or "25%"; close neighbours could swap as well.
SNAPSHOT_SCORES: dict[str, float] = {
    "Motorcycle": 0.24,
    "Astronaut": 0.23,
    "Rocket": 0.15,
    "Chelsea the cat": 0.08,
}


def with_fixed_scores(
    scores: dict[str, float],
) -> Callable[..., Awaitable[SimilarBatch]]:
    """``similar_to_item`` whose single batch carries ``scores`` by title, in their order.

    The server still ranks the items with the model (the batch must hold exactly the titles of
    ``scores``, all of them); only the numbers shown and so the order are the test's.
    """

    async def fixed(
        session: Session,
        item_id: int,
        filters: ListingFilters | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SimilarBatch:
        batch = await similar_to_item(session, item_id, filters, limit=limit, cursor=cursor)
        assert batch.cursor is None, "the snapshot expects every result in the first batch"
        assert sorted(card.title for card in batch.items) == sorted(scores)
        items = [msgspec.structs.replace(card, score=scores[card.title]) for card in batch.items]
        items.sort(key=lambda card: -scores[card.title])
        return msgspec.structs.replace(batch, items=items)

    return fixed


@pytest.fixture(scope="module")
def vision_snapshot_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotShop]:
    """A server with the model and the fixed certificate; ``ada`` sells the samples."""
    root = tmp_path_factory.mktemp("vision-snapshot")
    config = with_vision(snapshot_config(root), tmp_path_factory)
    server = ThreadedServer(config).start(timeout=180)  # builds the model if no test did yet
    try:
        yield open_shop(server, lambda session: list_samples(session, root / "pictures"))
    finally:
        server.stop()


def test_similar_results_snapshot(
    snap_compare: Callable[..., bool],
    vision_snapshot_shop: SnapshotShop,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """ "Similar" on Coffee, as ada: the side bar says "Looks like" over Coffee's picture, the
    label “Coffee” and "Everything you may see"; the four other samples as cards with their
    pictures, best match first and highlighted, each with "NN% similar" on its bottom frame;
    the status line "4 of 4 · like “Coffee”" and "end of the list".

    The server runs the model, but the scores (and so the order) shown are the fixed
    :data:`SNAPSHOT_SCORES`: Motorcycle 24%, Astronaut 23%, Rocket 15%, Chelsea the cat 8%."""
    server = vision_snapshot_shop.server
    snap = comparer(snap_compare, server, monkeypatch)
    monkeypatch.setattr(similar_data, "similar_to_item", with_fixed_scores(SNAPSHOT_SCORES))
    store = ClientStore(tmp_path / "client")
    store.save_token(server.url, vision_snapshot_shop.token)
    app = build_app(
        store=store,
        trust=TrustPolicy(fingerprint=server.fingerprint, known=store.known_servers),
        server_url=server.url,
        backoff=TEST_BACKOFF,
    )

    async def run_before(pilot: Pilot[None]) -> None:
        await logged_in_app(pilot, app)
        gallery = app.screen.query_one(CatalogueView)
        assert gallery.listing is not None
        coffee = next(card for card in gallery.listing.items if card.title == "Coffee")
        app.open_item(coffee)
        await until(pilot, lambda: isinstance(app.screen, ItemScreen))
        await pilot.press("s")
        await similar_results(pilot, app)
        example = app.screen.query_one("#similar-example", Picture)
        await until(
            pilot,
            lambda: (
                example.picture is not None
                and all(tile.query_one(Picture).picture is not None for tile in shown_tiles(app))
            ),
            what="the pictures",
        )
        app.clear_notifications()
        await pilot.pause()

    assert snap(app, run_before)
