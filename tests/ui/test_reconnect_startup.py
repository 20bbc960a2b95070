"""Pilot tests of a connection drop at each point of the start-up: the app heals as it does later.

The app reaches the server through a :class:`~tests.support.proxy.TcpProxy` that each test cuts
at one point: during the login, during the saved session's resume, right after the session is
made (before the first batch is asked for), while the first batch is on its way, and while a
warm reopen shows the saved gallery. Every time the app must say it is reconnecting, reconnect
by itself, and end on the gallery with its first batch: no login screen instead, no "loading"
that stays, no error or offline notice left behind.

The points are reached by waiting for states, never by sleeping: a cut "right after the session
is made" is made by a status listener on the session, called as the session says connected and
before it reads its first reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from backend.server import PixmartServer
from protocol.client import Backoff, ConnectionState, ConnectionStatus, Session
from tests.support.proxy import Direction, TcpProxy
from tests.ui.conftest import SIZE, Shop, type_text, until
from tests.ui.test_warm_reopen import BATCH, app_through, first_visit, gallery, header_mark
from tui.app import PixmartApp
from tui.screens import GalleryScreen, LoginScreen
from tui.store import ClientStore
from tui.widgets import ConnectionIndicator

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

#: Items the shop shows: more than one batch, so a first batch is told from the whole listing.
ITEMS = 15


class Recorder:
    """The connection states the app showed, in order (its ``connection`` reactive).

    Made before the app runs, so that it hears every state from the first.
    """

    def __init__(self, app: PixmartApp) -> None:
        self.states: list[ConnectionState] = []
        app.watch(app, "connection", self._record, init=False)

    def _record(self, status: ConnectionStatus | None) -> None:
        if status is not None:
            self.states.append(status.state)


def on_first_connected(monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]) -> None:
    """Call ``act`` the first time a session the app makes says it is connected.

    The status listener runs inside the session as it attaches the new connection, before it
    reads a frame from it: nothing has been asked or answered on it yet.
    """
    done = False

    class Watched(Session):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self.on_status(self._first_connected)

        def _first_connected(self, status: ConnectionStatus) -> None:
            nonlocal done
            if status.state is ConnectionState.CONNECTED and not done:
                done = True
                act()

    monkeypatch.setattr("tui.launch.Session", Watched)


def sessions_made_with(monkeypatch: pytest.MonkeyPatch, **settings: object) -> None:
    """Make the app's sessions with these settings (e.g. a longer backoff) instead of its own."""

    class Tuned(Session):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **{**kwargs, **settings})  # type: ignore[arg-type]

    monkeypatch.setattr("tui.launch.Session", Tuned)


async def heals(
    pilot: Pilot[None], app: PixmartApp, recorder: Recorder, *, username: str, cards: int
) -> None:
    """The app said reconnecting, reconnected, and shows the gallery's first batch, logged in."""
    await until(pilot, lambda: ConnectionState.RECONNECTING in recorder.states, what="reconnecting")
    await until(
        pilot,
        lambda: bool(recorder.states) and recorder.states[-1] is ConnectionState.CONNECTED,
        what="reconnected",
    )
    await until(
        pilot,
        lambda: (
            (view := gallery(app)) is not None
            and view.listing is not None
            and not view.listing.provisional
            and view.listing.batches >= 1
            and not view.fetching
        ),
        what="the gallery's first batch from the server",
    )
    view = gallery(app)
    assert view is not None and view.listing is not None
    assert len(view.grid.items) == cards
    assert app.user is not None and app.user.username == username
    assert [type(screen) for screen in app.screen_stack] == [GalleryScreen]
    # Nothing left saying it is still on its way, or that something went wrong.
    assert "loading" not in str(view.query_one("#listing-status", Static).render())
    await until(pilot, lambda: header_mark(app) == "", what="the header's mark cleared")
    assert "connected" in str(app.screen.query_one(ConnectionIndicator).render())
    left = [(n.title, n.message) for n in app._notifications if n.severity != "information"]
    assert left == []


async def test_a_drop_while_logging_in(
    make_shop: ShopFactory, server: PixmartServer, ui_store: ClientStore
) -> None:
    await make_shop(ITEMS, username="lena")
    async with TcpProxy(server.port) as proxy:
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: app.link.is_open, what="the connection")
            assert isinstance(app.screen, LoginScreen)
            await type_text(pilot, "lena")
            await pilot.press("tab")
            await type_text(pilot, "password123")
            proxy.drop(Direction.DOWNSTREAM)
            await pilot.press("enter")
            # The server took the login and answered: the answer is lost with the connection.
            await proxy.wait_dropped(Direction.DOWNSTREAM)
            proxy.cut()
            await heals(pilot, app, recorder, username="lena", cards=BATCH)


async def test_a_drop_while_the_saved_session_resumes(
    make_shop: ShopFactory, server: PixmartServer, ui_store: ClientStore
) -> None:
    """Cut during the first connection's handshakes: no saved gallery to fall back on."""
    shop = await make_shop(ITEMS)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        proxy.drop(Direction.DOWNSTREAM)  # the server's side of the handshake is held back
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await proxy.wait_dropped(Direction.DOWNSTREAM)
            proxy.cut()
            await heals(pilot, app, recorder, username="seller", cards=BATCH)


async def test_a_drop_right_after_the_session_is_made(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await make_shop(ITEMS)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        on_first_connected(monkeypatch, proxy.cut)
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await heals(pilot, app, recorder, username="seller", cards=BATCH)


async def test_a_drop_while_the_first_batch_loads(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await make_shop(ITEMS)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        # Every answer after the resume is held back, the first batch's among them.
        on_first_connected(monkeypatch, lambda: proxy.drop(Direction.DOWNSTREAM))
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(
                pilot,
                lambda: (view := gallery(app)) is not None and view.fetching,
                what="the first batch asked for",
            )
            screen = app.screen
            view = gallery(app)
            assert view is not None and view.listing is not None and view.listing.batches == 0
            proxy.cut()
            await heals(pilot, app, recorder, username="seller", cards=BATCH)
            assert app.screen is screen  # the same gallery, not a new one


async def test_a_drop_while_a_warm_reopen_shows_the_saved_gallery(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await make_shop(ITEMS)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        first = app_through(proxy.port, server, ui_store)
        async with first.run_test(size=SIZE) as pilot:
            await first_visit(pilot, first, BATCH)

        on_first_connected(monkeypatch, proxy.cut)
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, GalleryScreen)  # the saved gallery, before the server
            await heals(pilot, app, recorder, username="seller", cards=BATCH)
            assert app.screen is screen


async def test_a_drop_during_the_handshakes_of_a_warm_reopen(
    make_shop: ShopFactory, server: PixmartServer, ui_store: ClientStore
) -> None:
    """The saved gallery is on show and the first connection is cut before the session is made:
    that is a drop too (reconnecting), not a server out of reach (offline)."""
    shop = await make_shop(ITEMS)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        first = app_through(proxy.port, server, ui_store)
        async with first.run_test(size=SIZE) as pilot:
            await first_visit(pilot, first, BATCH)

        proxy.drop(Direction.DOWNSTREAM)
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = app.screen
            await proxy.wait_dropped(Direction.DOWNSTREAM)
            proxy.cut()
            await heals(pilot, app, recorder, username="seller", cards=BATCH)
            assert ConnectionState.OFFLINE not in recorder.states
            assert app.screen is screen


async def test_a_drop_as_the_gallery_opens_after_logging_in(
    make_shop: ShopFactory, server: PixmartServer, ui_store: ClientStore
) -> None:
    """The gallery shows before its first batch is in: a drop then is a drop like any other."""
    await make_shop(ITEMS, username="nina")
    async with TcpProxy(server.port) as proxy:  # no session saved for this address
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: app.link.is_open, what="the connection")
            await type_text(pilot, "nina")
            await pilot.press("tab")
            await type_text(pilot, "password123")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
            proxy.cut()
            await heals(pilot, app, recorder, username="nina", cards=BATCH)


async def test_reconnect_now_skips_the_wait_of_a_first_connection_tried_again(
    make_shop: ShopFactory,
    server: PixmartServer,
    ui_store: ClientStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ctrl+r ("Reconnect now") works while the first connection waits to be tried again too."""
    shop = await make_shop(ITEMS)
    async with TcpProxy(server.port) as proxy:
        ui_store.save_token(f"wss://127.0.0.1:{proxy.port}", shop.seller.token)
        # The next attempt after a cut is 30 s or more away: only ctrl+r brings it in time.
        sessions_made_with(
            monkeypatch, backoff=Backoff(initial=60.0, maximum=60.0), open_timeout=120.0
        )
        proxy.drop(Direction.DOWNSTREAM)
        app = app_through(proxy.port, server, ui_store)
        recorder = Recorder(app)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await proxy.wait_dropped(Direction.DOWNSTREAM)
            proxy.cut()
            await until(pilot, lambda: ConnectionState.RECONNECTING in recorder.states)
            assert isinstance(app.screen, LoginScreen) and not app.link.is_open
            await pilot.press("ctrl+r")
            await heals(pilot, app, recorder, username="seller", cards=BATCH)
