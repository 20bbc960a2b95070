"""Requests still running when their connection drops: what they leave behind.

A client may drop its connection at any moment (open, send, close). Each test cuts a connection
at a chosen point of a request, held there by a patched service call, and checks the server's
shared state afterwards:

* a cart read that finishes after its connection dropped must not subscribe the dropped
  connection to the cart's topics (the event hub would keep it, and queue events for it, for
  as long as the server runs);
* a logout that finishes after its connection dropped must not count the dropped connection
  as one that has not logged in: nothing frees that place again, and an address whose places
  are all taken so is refused (HTTP 429) until the server restarts;
* a connection dropped while it waits for one of its request slots (``max_in_flight``
  requests running) must stop counting at once, not once one of its requests ends: dead
  connections whose requests wait in a long queue would fill ``max_connections``, and every
  newcomer would get HTTP 503.

The attacker is on 127.0.0.2, a normal client on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from backend.commerce.live import user_topic
from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.messages.accounts import AccountCreated, CreateAccount, LoggedIn, Login, Logout
from protocol.messages.commerce import GetCart
from tests.conftest import SessionFactory, with_limits
from tests.support import RawClient, eventually, raw_client, running_server
from tests.support.commerce import PASSWORD

ATTACKER = "127.0.0.2"
NORMAL = "127.0.0.1"


class Held:
    """A patched service call that waits, once reached, until the test lets it go on."""

    def __init__(self, call: Callable[..., Awaitable[Any]]) -> None:
        self._call = call
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        #: Set once the call returned, failed or was cancelled.
        self.over = asyncio.Event()
        #: Calls that reached it.
        self.calls = 0

    async def __call__(self, *args: Any) -> Any:
        self.calls += 1
        try:
            self.reached.set()
            await self.release.wait()
            return await self._call(*args)
        finally:
            self.over.set()


@asynccontextmanager
async def logged_in_raw(
    server: PixmartServer, username: str, source: str = NORMAL
) -> AsyncIterator[tuple[RawClient, int]]:
    """A raw connection from ``source`` logged in as ``username`` (an account already made),
    and its user id."""
    async with raw_client(server, local_addr=(source, 0)) as client:
        await client.hello()
        reply = await client.call(Login(id=2, username=username, password=PASSWORD))
        assert isinstance(reply, LoggedIn), reply
        yield client, reply.user.id


async def drop(server: PixmartServer, client: RawClient) -> None:
    """Cut ``client``'s TCP connection and wait until the server has let the connection go."""
    before = server.connection_count
    client.ws.transport.abort()

    async def gone() -> bool:
        return server.connection_count < before

    await eventually(gone)


async def test_a_cart_read_finishing_after_its_connection_dropped_subscribes_nothing(
    server: PixmartServer, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await (await make_session()).create_account("alice", PASSWORD)
    assert server.domains is not None and server.domains.commerce.service is not None
    cart = server.domains.commerce.service.cart
    held = Held(cart.view)
    monkeypatch.setattr(cart, "view", held)

    async with logged_in_raw(server, "alice") as (client, user_id):
        await client.send(GetCart(id=3))
        await held.reached.wait()
        await drop(server, client)
    held.release.set()
    await held.over.wait()
    await asyncio.sleep(0.05)  # whatever the request does after the read has run by now

    # Nobody is connected: nothing may listen for the user's cart any more.
    assert not server.events.has_subscribers(user_topic(user_id))


async def test_a_logout_finishing_after_its_connection_dropped_takes_no_place_before_login(
    server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_limits(server_config, max_unauthenticated_per_address=2)
    async with running_server(config) as server:
        async with raw_client(server) as client:
            await client.hello()
            made = await client.call(CreateAccount(id=2, username="mallory", password=PASSWORD))
            assert isinstance(made, AccountCreated), made

        # Twice, the cap of the address: log in, log out, drop while the session is revoked.
        for _ in range(2):
            held = Held(server.accounts.logout)
            monkeypatch.setattr(server.accounts, "logout", held)
            async with logged_in_raw(server, "mallory", ATTACKER) as (client, _):
                await client.send(Logout(id=3))
                await held.reached.wait()
                await drop(server, client)
            held.release.set()
            await held.over.wait()
            await asyncio.sleep(0.05)  # the request's last steps, after the revocation

        # Nothing of the attacker's is open: no place before login is taken, and the address
        # may connect again (the normal client on its own address all along).
        assert server._transport is not None
        assert server._transport.prelogin.count_from(ATTACKER) == 0
        async with raw_client(server, local_addr=(ATTACKER, 0)) as again:
            await again.hello()
        async with raw_client(server, local_addr=(NORMAL, 0)) as normal:
            await normal.hello()


async def test_a_connection_dropped_while_its_requests_fill_its_slots_stops_counting_at_once(
    server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_limits(server_config, max_in_flight=2, max_connections=3)
    async with running_server(config) as server:
        async with raw_client(server) as client:
            await client.hello()
            made = await client.call(CreateAccount(id=2, username="mallory", password=PASSWORD))
            assert isinstance(made, AccountCreated), made
        assert server.domains is not None and server.domains.commerce.service is not None
        cart = server.domains.commerce.service.cart
        held = Held(cart.view)
        monkeypatch.setattr(cart, "view", held)

        async with AsyncExitStack() as stack:
            clients = [
                (await stack.enter_async_context(logged_in_raw(server, "mallory", ATTACKER)))[0]
                for _ in range(3)
            ]
            # Two requests running on each (its slots), and a third read, waiting for a slot.
            for client in clients:
                for request_id in (10, 11, 12):
                    await client.send(GetCart(id=request_id))

            async def slots_full() -> bool:
                return held.calls == 2 * len(clients)

            await eventually(slots_full)
            await asyncio.sleep(0.2)  # the third frames are read meanwhile
            for client in clients:
                client.ws.transport.abort()

            async def all_gone() -> bool:
                return server.connection_count == 0

            await eventually(all_gone)  # their requests still wait

            # The normal client gets in while the attacker's requests still wait.
            async with raw_client(server, local_addr=(NORMAL, 0)) as normal:
                await normal.hello()
        held.release.set()
