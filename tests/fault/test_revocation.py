"""A revoked session hears nothing more: the server ends its live events at once.

Issue #13, item 4: a connection whose session ended elsewhere (password changed on another
device, logged out on a connection sharing the token, expired while idle, admin role taken away)
kept its subscriptions and went on receiving ``CartChanged`` with the whole cart, ``ItemAdded``
for new private items and ``ItemChanged`` with their private titles, because sessions were only
re-checked when a request arrived.

Proves that such a connection, having sent nothing, receives exactly one ``SessionEnded`` with the
reason and then nothing at all while the same changes reach a connection that is still logged in
(the positive control: the events were published); that its next request that needs a login is
answered ``unauthenticated``; that the connection that changed the password keeps its own
subscriptions; that expiry is caught by the periodic sweep and, with the sweep off, at delivery;
and that the TUI lands on the login screen with a one-line reason, its open screens gone quietly.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from backend.accounts.repositories import account_repository, session_repository
from backend.accounts.service import AccountService
from backend.config import ServerConfig
from backend.server import PixmartServer
from backend.storage.engine import engine_for
from protocol import commerce_client as shop
from protocol.catalogue_client import CatalogueWatch, browse, edit_item
from protocol.client import Session
from protocol.errors import Unauthenticated
from protocol.messages.accounts import SessionEnded, SessionEndReason
from protocol.messages.commerce import CartChanged
from protocol.messages.live import ItemAdded, ItemChanged
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.support import pinned_session, running_server
from tests.support.commerce import EventLog, list_item
from tests.ui.conftest import SIZE, type_text, until
from tui.launch import build_app
from tui.screens import GalleryScreen, ItemScreen, LoginScreen
from tui.store import ClientStore

PASSWORD = "password123"
NEW_PASSWORD = "anotherpassword456"
#: How long a revoked connection is watched for stray events once the control has heard them all.
QUIET = 0.3


async def listen_everywhere(session: Session) -> EventLog:
    """Subscribe ``session`` to all it can hear (catalogue, cart, its items); record its events."""
    await CatalogueWatch(session).watch_catalogue()
    await shop.get_cart(session)
    return EventLog(session)


async def make_private_changes(actor: Session, cart_item: int, tmp_path: Path) -> int:
    """Change the cart, list a private item and retitle it as ``actor``; return the item."""
    await shop.add_to_cart(actor, cart_item, 1)
    secret = await list_item(actor, tmp_path, title="Private draft", public=False)
    await edit_item(actor, secret, title="Private, retitled")
    return secret


async def heard_the_changes(control: EventLog, secret: int) -> None:
    """Wait until ``control`` heard all three kinds of change made by make_private_changes."""
    await control.wait_for(CartChanged)
    await control.wait_for(ItemAdded, lambda event: event.item_id == secret)
    await control.wait_for(
        ItemChanged, lambda event: event.item_id == secret and event.title == "Private, retitled"
    )


@pytest.mark.parametrize("same_token", [False, True], ids=["own-login", "same-token"])
async def test_a_password_change_ends_the_other_connections_live_events(
    make_session: SessionFactory, tmp_path: Path, same_token: bool
) -> None:
    seller = await logged_in(make_session, "seller")
    item = await list_item(seller, tmp_path)
    laptop = await logged_in(make_session, "owner")
    if same_token:
        phone = await make_session(token=laptop.token)
    else:
        phone = await make_session()
        await phone.login("owner", PASSWORD)
    await shop.add_to_cart(laptop, item, 1)
    phones = await listen_everywhere(phone)
    laptops = EventLog(laptop)
    await CatalogueWatch(laptop).watch_catalogue()

    await laptop.change_password(PASSWORD, NEW_PASSWORD)

    ended = await phones.wait_for(SessionEnded)
    assert ended.reason is SessionEndReason.PASSWORD_CHANGED
    assert (phone.token, phone.user, phone.end_reason) == (
        None,
        None,
        SessionEndReason.PASSWORD_CHANGED,
    )
    # A device logged in with the new password hears what the laptop does from now on.
    tablet = await make_session()
    await tablet.login("owner", NEW_PASSWORD)
    tablets = await listen_everywhere(tablet)
    secret = await make_private_changes(laptop, item, tmp_path)
    await heard_the_changes(tablets, secret)
    # The laptop changed the password and carries on, its catalogue subscription with it.
    await laptops.wait_for(ItemAdded, lambda event: event.item_id == secret)
    assert laptops.of(SessionEnded) == []

    await asyncio.sleep(QUIET)
    assert phones.events == [ended]
    with pytest.raises(Unauthenticated, match="password was changed"):
        await phone.whoami()


async def test_a_logout_ends_the_live_events_of_connections_sharing_the_token(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    item = await list_item(seller, tmp_path)
    laptop = await logged_in(make_session, "owner")
    phone = await make_session(token=laptop.token)  # the same session, resumed
    tablet = await make_session()
    await tablet.login("owner", PASSWORD)  # a session of its own, untouched by the logout
    desk = await make_session(token=tablet.token)
    phones = await listen_everywhere(phone)
    desks = await listen_everywhere(desk)
    laptops = EventLog(laptop)

    await laptop.logout()

    ended = await phones.wait_for(SessionEnded)
    assert ended.reason is SessionEndReason.LOGGED_OUT
    assert phone.token is None and phone.user is None
    secret = await make_private_changes(tablet, item, tmp_path)
    await heard_the_changes(desks, secret)

    await asyncio.sleep(QUIET)
    assert phones.events == [ended]
    assert laptops.events == []  # the connection that logged out asked for it: it hears Ok
    assert desks.of(SessionEnded) == []
    with pytest.raises(Unauthenticated, match="logged out"):
        await phone.whoami()


def _lifetimes(config: ServerConfig, *, idle: float, absolute: float, sweep: float) -> ServerConfig:
    policy = replace(
        config.sessions, idle_expiry=idle, absolute_expiry=absolute, sweep_interval=sweep
    )
    return replace(config, sessions=policy)


async def test_an_idle_session_is_ended_by_the_sweep_and_hears_nothing_more(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    config = _lifetimes(server_config, idle=0.5, absolute=3600.0, sweep=0.05)
    async with (
        running_server(config) as server,
        pinned_session(server) as seller,
        pinned_session(server) as phone,
    ):
        await seller.create_account("seller", PASSWORD)
        await phone.create_account("owner", PASSWORD)
        await seller.login("seller", PASSWORD)
        item = await list_item(seller, tmp_path)
        await phone.login("owner", PASSWORD)
        await shop.add_to_cart(phone, item, 1)
        phones = await listen_everywhere(phone)

        # Nothing is published, nothing is sent: the sweep notices the expiry by itself.
        ended = await phones.wait_for(SessionEnded, timeout=5.0)
        assert ended.reason is SessionEndReason.EXPIRED
        assert phone.token is None

        await seller.login("seller", PASSWORD)  # its own session expired meanwhile
        sellers = EventLog(seller)
        await CatalogueWatch(seller).watch_catalogue()
        await edit_item(seller, item, title="Retitled")  # on the phone's item and catalogue
        fresh = await list_item(seller, tmp_path, title="New")
        await sellers.wait_for(ItemAdded, lambda event: event.item_id == fresh)

        await asyncio.sleep(QUIET)
        assert phones.events == [ended]
        with pytest.raises(Unauthenticated, match="expired"):
            await phone.whoami()


async def test_an_expired_session_is_caught_at_delivery_without_a_sweep(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    absolute = 2.0
    config = _lifetimes(server_config, idle=3600.0, absolute=absolute, sweep=3600.0)
    async with (
        running_server(config) as server,
        pinned_session(server) as seller,
        pinned_session(server) as phone,
    ):
        await seller.create_account("seller", PASSWORD)
        await phone.create_account("owner", PASSWORD)
        await phone.login("owner", PASSWORD)
        phones = await listen_everywhere(phone)
        await asyncio.sleep(absolute + 0.1)  # the phone's session is over; nobody noticed yet
        assert phones.events == []

        await seller.login("seller", PASSWORD)
        sellers = EventLog(seller)
        await CatalogueWatch(seller).watch_catalogue()
        fresh = await list_item(seller, tmp_path, title="New")
        await sellers.wait_for(ItemAdded, lambda event: event.item_id == fresh)

        ended = await phones.wait_for(SessionEnded)
        assert ended.reason is SessionEndReason.EXPIRED
        await asyncio.sleep(QUIET)
        assert phones.events == [ended]


async def test_taking_the_admin_role_away_ends_the_sessions(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    carol = await logged_in(make_session, "carol")
    await server.accounts.set_admin("carol")
    carols = await listen_everywhere(carol)
    alices = EventLog(alice)
    await CatalogueWatch(alice).watch_catalogue()
    granted = await list_item(alice, tmp_path, title="Seen by admins", public=False)
    await carols.wait_for(ItemAdded, lambda event: event.item_id == granted)

    await server.accounts.set_admin("carol", False)

    ended = await carols.wait_for(SessionEnded)
    assert ended.reason is SessionEndReason.REVOKED
    secret = await list_item(alice, tmp_path, title="Owner only", public=False)
    await alices.wait_for(ItemAdded, lambda event: event.item_id == secret)
    await asyncio.sleep(QUIET)
    assert [event.item_id for event in carols.of(ItemAdded)] == [granted]
    assert carols.events[-1] == ended
    with pytest.raises(Unauthenticated, match="administrator"):
        await carol.whoami()


async def test_an_admin_command_beside_the_server_ends_the_sessions_at_the_next_sweep(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    await logged_in(make_session, "carol")
    await server.accounts.set_admin("carol")
    phone = await make_session()
    await phone.login("carol", PASSWORD)
    phones = await listen_everywhere(phone)

    # What ``pixmart-server admin remove carol`` does: its own connection to the database.
    db = engine_for(server.config)
    await db.open()
    try:
        accounts = AccountService(
            account_repository(db), session_repository(db), server.config.sessions
        )
        await accounts.set_admin("carol", False)
    finally:
        await db.close()
    await server.accounts.sweep()

    ended = await phones.wait_for(SessionEnded)
    assert ended.reason is SessionEndReason.REVOKED
    with pytest.raises(Unauthenticated):
        await phone.whoami()


async def test_the_tui_returns_to_the_login_screen_with_the_reason(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    seller = await logged_in(make_session, "seller")
    await list_item(seller, tmp_path, title="On show")
    owner = await logged_in(make_session, "owner")
    assert owner.token is not None
    url = f"wss://127.0.0.1:{server.port}"
    store = ClientStore(tmp_path / "tui-config")
    store.save_token(url, owner.token)
    trust = TrustPolicy(fingerprint=server.fingerprint, known=store.known_servers)
    app = build_app(store=store, trust=trust, server_url=url, backoff=TEST_BACKOFF)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        [card] = (await browse(owner)).items
        app.open_item(card)
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")

        # The same person changes the password on another device (sharing the saved session).
        await owner.change_password(PASSWORD, NEW_PASSWORD)

        def status() -> str:
            screen = app.screen
            if not isinstance(screen, LoginScreen):
                return ""
            return str(screen.query_one("#login-status", Static).render())

        await until(pilot, lambda: "logged out" in status(), what="the login screen's reason")
        assert status() == (
            "You were logged out because your password was changed on another device."
        )
        assert app.user is None
        assert store.token(url) is None
        session = app.link.session
        assert session is not None and session.token is None

        # The app is fine: the name is filled in, the new password takes it to the gallery.
        assert app.screen.query_one("#username", Input).value == "owner"
        app.screen.query_one("#password", Input).focus()
        await type_text(pilot, NEW_PASSWORD)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, GalleryScreen), what="the gallery")
        assert app.user is not None and app.user.username == "owner"
