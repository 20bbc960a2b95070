"""Provides Pilot tests of the shell against a real server: trust, log in, help, connection."""

from __future__ import annotations

from textual.app import App
from textual.command import CommandList, CommandPalette, DiscoveryHit
from textual.widgets import Input, Static
from textual.widgets._toast import Toast

from backend.server import PixmartServer
from protocol.client import ConnectionState, ConnectionStatus
from protocol.trust import TrustPolicy
from tests.conftest import SessionFactory, logged_in
from tests.support.proxy import TcpProxy
from tests.ui.conftest import SIZE, AppFactory, type_text, until, url_of
from tests.ui.startup_probe import measure_startup
from tui.app import PixmartApp
from tui.dialogs import FingerprintChangedDialog, TrustDialog
from tui.palette import PixmartCommands
from tui.screens import GalleryScreen, HelpScreen, LoginScreen
from tui.store import ClientStore
from tui.widgets import ConnectionIndicator

WRONG = ":".join(["AB"] * 32)


def toasts(app: App[None]) -> list[str]:
    """The texts of the notifications on screen."""
    screen = app.screen
    return [str(toast.render()) for toast in screen.query(Toast)]


def indicator_text(app: App[None]) -> str:
    screen = app.screen
    return str(screen.query_one(ConnectionIndicator).render())


async def test_first_contact_asks_and_accepting_pins_the_fingerprint(
    server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    app = make_app(trust=TrustPolicy(known=ui_store.known_servers))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrustDialog), what="trust dialog")
        dialog = app.screen
        assert isinstance(dialog, TrustDialog)
        assert dialog.fingerprint == server.fingerprint
        shown = " ".join(str(w.render()) for w in dialog.query(Static))
        assert server.fingerprint[:47] in shown  # the first 16 pairs, as shown on the first line
        await pilot.press("y")
        await until(pilot, lambda: app.link.is_open, what="connection")
        assert ui_store.known_servers.get(f"127.0.0.1:{server.port}") == server.fingerprint
        assert isinstance(app.screen, LoginScreen)
        assert app.focused is app.screen.query_one("#username", Input)
        await until(pilot, lambda: "connected" in indicator_text(app))
        assert server.fingerprint[:8] in indicator_text(app)


async def test_refusing_first_contact_does_not_connect(
    server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    app = make_app(trust=TrustPolicy(known=ui_store.known_servers))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrustDialog), what="trust dialog")
        await pilot.press("n")
        await until(pilot, lambda: bool(toasts(app)), what="a notification")
        assert any("not trusted" in text for text in toasts(app))
        assert not app.link.is_open
        assert ui_store.known_servers.get(f"127.0.0.1:{server.port}") is None
        assert "offline" in indicator_text(app)


async def test_changed_fingerprint_warns_with_both_and_does_not_connect(
    server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    ui_store.known_servers.pin(f"127.0.0.1:{server.port}", WRONG)
    app = make_app(trust=TrustPolicy(known=ui_store.known_servers))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, FingerprintChangedDialog))
        dialog = app.screen
        text = " ".join(str(w.render()) for w in dialog.query(Static))
        assert "CHANGED" in str(dialog.query_one(".title", Static).render())
        assert WRONG[:47] in text and server.fingerprint[:47] in text
        assert not app.link.is_open
        # The refused link may still be closing on the server's side: it must go, unused.
        await until(pilot, lambda: server.connection_count == 0, what="the refused link to close")
        # Pressing Enter in the login form afterwards still refuses to connect.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen))
        assert ui_store.known_servers.get(f"127.0.0.1:{server.port}") == WRONG


async def test_trust_flag_answers_first_contact_in_advance(
    server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    app = make_app()  # --trust with the server's fingerprint
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.is_open, what="connection")
        assert not isinstance(app.screen, TrustDialog)
        assert ui_store.known_servers.get(f"127.0.0.1:{server.port}") == server.fingerprint


async def test_create_an_account_and_land_in_the_gallery(
    server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.is_open)
        await pilot.press("ctrl+n")
        assert app.screen.query_one("#repeat", Input).display
        await type_text(pilot, "newbie")
        await pilot.press("tab")
        await type_text(pilot, "password123")
        await pilot.press("enter")  # moves on to "repeat password"
        assert app.focused is app.screen.query_one("#repeat", Input)
        await type_text(pilot, "password123")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        assert app.user is not None and app.user.username == "newbie"
        header = str(app.screen.query_one("#user", Static).render())
        assert "newbie" in header
        assert ui_store.last_username == "newbie"
        assert ui_store.last_server == url_of(server)
        assert ui_store.token(url_of(server))


async def test_wrong_password_is_told_in_words(
    make_session: SessionFactory, make_app: AppFactory
) -> None:
    await logged_in(make_session, "alice")
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await type_text(pilot, "alice")
        await pilot.press("tab")
        await type_text(pilot, "not-the-password")
        await pilot.press("enter")
        await until(pilot, lambda: bool(toasts(app)), what="a notification")
        assert isinstance(app.screen, LoginScreen)
        status = str(app.screen.query_one("#login-status", Static).render())
        assert status and "Traceback" not in status
        assert status in " ".join(toasts(app))
        assert app.screen.query_one("#password", Input).value == ""


async def test_log_in_then_log_out(
    make_session: SessionFactory, make_app: AppFactory, ui_store: ClientStore
) -> None:
    await logged_in(make_session, "bob")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "bob")
        await pilot.press("enter")  # to the password
        await type_text(pilot, "password123")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen))
        url = app.link.url
        assert url is not None and ui_store.token(url)
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        assert app.user is None
        assert ui_store.token(url) is None
        assert app.screen.query_one("#password", Input).value == ""


async def test_a_saved_session_skips_the_login(
    server: PixmartServer, make_session: SessionFactory, make_app: AppFactory, ui_store: ClientStore
) -> None:
    session = await logged_in(make_session, "carol")
    assert session.token is not None
    ui_store.save_token(url_of(server), session.token)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        assert app.user is not None and app.user.username == "carol"


async def test_a_saved_session_with_the_server_down_is_told_on_the_login_form(
    make_session: SessionFactory, server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    """No saved gallery to fall back on: the form says why, without promising cards to browse
    or a retry that nobody makes."""
    session = await logged_in(make_session, "gina")
    assert session.token is not None
    proxy = TcpProxy(server.port)
    url = f"wss://127.0.0.1:{await proxy.start()}"
    await proxy.close()  # nothing listens at that address any more
    ui_store.save_token(url, session.token)
    app = make_app(server_url=url)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: bool(toasts(app)), what="a notification")
        assert isinstance(app.screen, LoginScreen)
        status = str(app.screen.query_one("#login-status", Static).render())
        assert "refused" in status and "is it running" in status
        told = " ".join(toasts(app))
        assert "refused" in told
        assert "cards" not in told and "keeps trying" not in told
        assert "offline" in indicator_text(app)


async def test_an_unknown_server_starts_in_the_address_field(make_app: AppFactory) -> None:
    app = make_app(server_url=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.focused is app.screen.query_one("#server", Input)
        assert not app.link.is_open  # nothing is contacted before the person says where


async def test_help_lists_the_keys_of_the_screen_and_the_app(
    make_session: SessionFactory, server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    session = await logged_in(make_session, "dave")
    assert session.token is not None
    ui_store.save_token(url_of(server), session.token)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        descriptions = {command.description for command in help_screen.commands}
        assert {"Help", "Quit", "Log out", "Reconnect now", "Gallery"} <= descriptions
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen))


async def test_the_palette_offers_every_action(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.is_open)
        provider = PixmartCommands(app.screen)
        names = [
            str(hit.display) async for hit in provider.discover() if isinstance(hit, DiscoveryHit)
        ]
        assert "New account" in names and "Help" in names and "Quit" in names
        assert "Log out" not in names  # not logged in yet
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await type_text(pilot, "new acc")
        palette = app.screen
        await until(pilot, lambda: palette.query_one(CommandList).option_count > 0)
        await pilot.press("enter")  # runs "New account" on the login screen
        await until(pilot, lambda: isinstance(app.screen, LoginScreen) and app.screen.creating)


async def test_a_drop_shows_reconnecting_then_connected_and_nothing_else(
    make_session: SessionFactory, server: PixmartServer, make_app: AppFactory, ui_store: ClientStore
) -> None:
    session = await logged_in(make_session, "erin")
    assert session.token is not None
    ui_store.save_token(url_of(server), session.token)
    app = make_app()
    states: list[ConnectionState] = []
    async with app.run_test(size=SIZE) as pilot:
        # Dropped as soon as the gallery shows, its first batch maybe still on its way: the
        # app is busy then, and the drop must still be shown (tests/ui/test_reconnect_startup.py
        # drops at each point of the start-up).
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen))

        def record(status: ConnectionStatus | None) -> None:
            if status is not None:
                states.append(status.state)

        app.watch(app, "connection", record)
        screen = app.screen
        assert app.link.session is not None
        app.link.session.abort_transport()
        await until(pilot, lambda: ConnectionState.RECONNECTING in states, what="reconnecting")
        await until(pilot, lambda: states[-1] is ConnectionState.CONNECTED, what="reconnected")
        assert "connected" in indicator_text(app)
        assert app.screen is screen and app.user is not None  # still logged in, same screen


def test_pixmart_without_a_subcommand_opens_the_login_screen() -> None:
    """The real command in a pseudo-terminal: the TUI starts, quickly, and draws the login form."""
    seconds = measure_startup()
    assert seconds < 5.0  # the target is 1 s; this only catches a launch that hangs or crawls


async def test_the_app_can_be_handed_a_connected_session(
    make_session: SessionFactory, ui_store: ClientStore
) -> None:
    """Like harlequin's ``App(adapter)``: the app uses the session it is given, as it is."""
    session = await logged_in(make_session, "frank")
    app = PixmartApp(store=ui_store, session=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        assert app.link.session is session and app.user is not None
        assert app.user.username == "frank"
        assert "connected" in indicator_text(app)
