"""Pilot tests of the warm reopen and of offline browsing (issue #21).

The app reaches the server through a :class:`~tests.support.proxy.TcpProxy`, so that a test can
hold the server's answers back (the saved gallery must show before it answers), or take the
server away altogether (offline). Each test has its own cache dir (``PIXMART_CACHE_DIR``, set
per test by ``tests/conftest.py``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot

from backend.server import PixmartServer
from protocol.catalogue_client import delete_items, edit_item
from protocol.client import ConnectionState
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.support.proxy import Direction, TcpProxy
from tests.ui.conftest import SIZE, Shop, until
from tui.app import PixmartApp
from tui.data.gallery_cache import Freshness
from tui.launch import build_app
from tui.screens import GalleryScreen, ItemScreen, LoginScreen
from tui.store import ClientStore
from tui.widgets import CatalogueView, ItemTile
from tui.widgets.card_grid import CardGrid
from tui.widgets.picture import Picture
from tui.widgets.status_header import StatusHeader

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

BATCH = 12


def app_through(proxy_port: int, server: PixmartServer, store: ClientStore) -> PixmartApp:
    """The app as ``pixmart`` builds it, pointed at the proxy, the server pinned."""
    return build_app(
        store=store,
        trust=TrustPolicy(fingerprint=server.fingerprint, known=store.known_servers),
        server_url=f"wss://127.0.0.1:{proxy_port}",
        backoff=TEST_BACKOFF,
        listing_batch=BATCH,
    )


def gallery(app: PixmartApp) -> CatalogueView | None:
    """The gallery's view, once composed down to its grid."""
    if not isinstance(app.screen, GalleryScreen):
        return None
    for view in app.screen.query(CatalogueView):
        if view.query(CardGrid):
            return view
    return None


def shown_ids(app: PixmartApp) -> list[int]:
    view = gallery(app)
    return [card.id for card in view.grid.items] if view is not None else []


def tiles_with_pictures(app: PixmartApp) -> int:
    return sum(
        1
        for tile in app.screen.query(ItemTile)
        if tile.card is not None and tile.query_one(Picture).picture is not None
    )


def header_mark(app: PixmartApp) -> str:
    return app.screen.query_one(StatusHeader).marked


def saved_galleries() -> list[Path]:
    root = Path(os.environ["PIXMART_CACHE_DIR"]) / "galleries"
    return list(root.glob("*/*.gallery"))


async def first_visit(pilot: Pilot[None], app: PixmartApp, expected: int) -> None:
    """Let the first run load the gallery and save it for next time."""
    await until(pilot, lambda: len(shown_ids(app)) == expected, what="the first batch")
    await until(pilot, lambda: bool(saved_galleries()), what="the saved gallery")
    await until(pilot, lambda: tiles_with_pictures(app) >= 1, what="pictures on the first visit")


@contextmanager
def watching_for_empty_frames(app: PixmartApp) -> Iterator[list[int]]:
    """Record how many cards the grid held each time it re-filled its tiles."""
    view = gallery(app)
    assert view is not None
    grid: CardGrid = view.grid
    counts: list[int] = []
    original = grid.refresh_tiles

    async def recorded() -> None:
        counts.append(len(grid.items))
        await original()

    grid.refresh_tiles = recorded  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        grid.refresh_tiles = original  # type: ignore[method-assign]


async def test_reopen_shows_the_saved_gallery_before_the_server_answers_then_reconciles(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(20)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        first = app_through(proxy.port, server, ui_store)
        async with first.run_test(size=SIZE) as pilot:
            await first_visit(pilot, first, BATCH)
            saved = shown_ids(first)

        # While the app was closed: one item of the saved gallery went, another got cheaper.
        gone, cheaper = saved[0], saved[1]
        await delete_items(shop.seller, [gone])
        await edit_item(shop.seller, cheaper, price_cents=123)

        # The server's answers are held back: whatever shows now comes from the cache.
        proxy.drop(Direction.DOWNSTREAM)
        second = app_through(proxy.port, server, ui_store)
        async with second.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: shown_ids(second) == saved, what="the saved gallery")
            view = gallery(second)
            assert view is not None and view.listing is not None and view.listing.provisional
            assert second.link.session is not None
            assert second.link.session.status.state is not ConnectionState.CONNECTED
            await until(
                pilot,
                lambda: tiles_with_pictures(second) == len(view.grid.window),
                what="every visible card's picture, from the disk cache",
            )
            assert "refreshing" in header_mark(second)
            assert second.user is not None and second.user.username == "seller"

            with watching_for_empty_frames(second) as frames:
                proxy.cut()  # the held-back connection fails; the retry gets through
                await until(
                    pilot,
                    lambda: view.listing is not None and not view.listing.provisional,
                    what="the server's first batch",
                )
                await pilot.pause()
            assert gone not in shown_ids(second)
            card = view.listing.get(cheaper)
            assert card is not None and card.price_cents == 123
            assert frames and min(frames) > 0  # updated in place: never an empty grid
            assert not view.has_class("-empty")
            await until(pilot, lambda: header_mark(second) == "", what="the mark cleared")


async def test_offline_reopen_keeps_the_saved_gallery_browsable(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
) -> None:
    shop = await make_shop(14)
    proxy = TcpProxy(server.port)
    port = await proxy.start()
    ui_store.save_token(f"wss://127.0.0.1:{port}", shop.seller.token)
    first = app_through(port, server, ui_store)
    async with first.run_test(size=SIZE) as pilot:
        await first_visit(pilot, first, BATCH)
        saved = shown_ids(first)
    await proxy.close()  # the server is out of reach: nothing listens at its address

    app = app_through(port, server, ui_store)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown_ids(app) == saved, what="the saved gallery")
        await until(
            pilot,
            lambda: app.gallery_cache.freshness is Freshness.OFFLINE,
            what="the gallery marked offline",
        )
        await until(pilot, lambda: "offline" in header_mark(app), what="the offline mark")
        view = gallery(app)
        assert view is not None
        # Browsable: the highlight moves over the saved cards.
        await pilot.press("right", "down")
        assert view.grid.highlight > 0
        # A refresh needs the server: it says so and the cards stay.
        told = len(app._notifications)
        await pilot.press("r")
        await until(
            pilot,
            lambda: len(app._notifications) > told,
            what="the offline notice",
        )
        notice = list(app._notifications)[-1]
        assert notice.title == "Offline" and "offline" in notice.message
        await pilot.pause()
        assert shown_ids(app) == saved
        # So does opening an item; the card's facts show, its preview cannot come.
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        assert all(n.severity != "error" for n in app._notifications)


async def test_another_login_never_sees_the_saved_gallery(
    make_shop: ShopFactory,
    make_session: SessionFactory,
    server: PixmartServer,
    ui_store: ClientStore,
) -> None:
    """The snapshot is bound to the session it was saved under, before the server says a word."""
    shop = await make_shop(6)
    async with TcpProxy(server.port) as proxy:
        url = f"wss://127.0.0.1:{proxy.port}"
        ui_store.save_token(url, shop.seller.token)
        first = app_through(proxy.port, server, ui_store)
        async with first.run_test(size=SIZE) as pilot:
            await first_visit(pilot, first, 6)

        # Someone else logs in on this machine (a new token for the same server).
        other = await logged_in(make_session, "someone-else")
        ui_store.save_token(url, other.token)
        proxy.drop(Direction.DOWNSTREAM)  # the server says nothing yet
        app = app_through(proxy.port, server, ui_store)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(20):
                await pilot.pause(0.01)
                assert not isinstance(app.screen, GalleryScreen)
                assert app.user is None
            proxy.cut()
            await pilot.press("ctrl+r")  # connect now rather than at the next try
            await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
            assert app.user is not None and app.user.username == "someone-else"


async def test_reopen_opens_on_the_saved_gallery_and_an_ended_session_falls_back_to_login(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
) -> None:
    """The app's first screen is the saved gallery (no login screen before it); when the server
    no longer knows the session, the app goes to the login screen and the saved cards go."""
    shop = await make_shop(6)
    async with TcpProxy(server.port) as proxy:
        url = f"wss://127.0.0.1:{proxy.port}"
        ui_store.save_token(url, shop.seller.token)
        first = app_through(proxy.port, server, ui_store)
        async with first.run_test(size=SIZE) as pilot:
            await first_visit(pilot, first, 6)
            saved = shown_ids(first)
        await shop.seller.logout()  # the session ends on the server; the app still holds it

        proxy.drop(Direction.DOWNSTREAM)  # the server says nothing yet
        app = app_through(proxy.port, server, ui_store)
        async with app.run_test(size=SIZE) as pilot:
            assert app.current_mode == "gallery"
            assert [type(screen) for screen in app.screen_stack] == [GalleryScreen]
            await until(pilot, lambda: shown_ids(app) == saved, what="the saved gallery")
            proxy.cut()
            await pilot.press("ctrl+r")  # connect now rather than at the next try
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login")
            assert app.user is None
            assert app.gallery_cache.provisional is None
