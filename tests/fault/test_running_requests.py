"""Requests running at once: bounded per client address, per user and server-wide, orphans too.

A request runs on after its connection drops (a retry finds its reply in the replay cache), so
a connection's own bound (``max_in_flight``) holds only while it is open: an address could send
its slow requests, reset, reconnect (a Resume is cheap) and do it again, leaving ever more
running ahead of everyone else's. These tests replay that with a patched service call that holds
every cart read, and check that

* an address cycling connect / send / reset is held to its bound, counting the requests of its
  dropped connections, and its next requests are refused at once (``rate_limited`` with a retry
  hint) while a normal client on another address is served quickly;
* one account spread over two addresses is held to the per-user bound, and the server as a
  whole to its own;
* the count goes back to zero whatever ends the requests: a reply, an error, or cancelled at
  shutdown.

The attacker is on 127.0.0.2 (and 127.0.0.3), a normal client on 127.0.0.1.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import pytest

from backend.config import ServerConfig
from backend.running import RETRY_AFTER, RunningRequests
from backend.server import PixmartServer
from backend.transport import Transport
from protocol.errors import ErrorCode, RateLimited
from protocol.messages.accounts import (
    AccountCreated,
    CreateAccount,
    LoggedIn,
    Login,
    Me,
    Resume,
    Resumed,
    WhoAmI,
)
from protocol.messages.base import PROTOCOL_VERSION, ErrorReply, Hello, Reply
from protocol.messages.commerce import GetCart
from tests.conftest import with_limits
from tests.fault.test_cancellation import Held, logged_in_raw
from tests.support import RawClient, eventually, raw_client, running_server
from tests.support.commerce import PASSWORD

ATTACKER = "127.0.0.2"
ATTACKER_TOO = "127.0.0.3"
NORMAL = "127.0.0.1"

#: A normal client's request while the attacker is held at its bound: served within this.
NORMAL_SECONDS = 1.0


# -- the counter alone -----------------------------------------------------------------------


def test_each_bound_refuses_at_once_with_a_retry_hint_and_counts_nothing() -> None:
    running = RunningRequests(per_address=2, per_user=3, total=5)
    first = [running.admit(ATTACKER, 7), running.admit(ATTACKER, 7)]
    with pytest.raises(RateLimited) as address:
        running.admit(ATTACKER, None)
    third = running.admit(ATTACKER_TOO, 7)
    with pytest.raises(RateLimited) as user:
        running.admit("127.0.0.4", 7)
    last = [running.admit("127.0.0.4", 8), running.admit("127.0.0.5", None)]
    with pytest.raises(RateLimited) as server:
        running.admit(NORMAL, None)

    for refusal, bound in ((address, "address"), (user, "user"), (server, "server")):
        assert refusal.value.retry_after == RETRY_AFTER
        assert refusal.value.details == {"bound": bound}
        assert running.refused[bound] == 1
    assert running.count == 5
    assert running.count_from(ATTACKER) == 2 and running.count_of(7) == 3

    for ticket in [*first, third, *last]:
        ticket.release()
        ticket.release()  # a second release gives back nothing more
    assert running.count == 0
    assert running.count_from(ATTACKER) == 0 and running.count_of(7) == 0
    assert not running._by_key and not running._by_user  # no address or user left behind


def test_an_ipv6_address_counts_by_its_64() -> None:
    running = RunningRequests(per_address=1, per_user=10, total=10)
    ticket = running.admit("2001:db8::1", None)
    with pytest.raises(RateLimited):
        running.admit("2001:db8::2", None)  # same /64
    running.admit("2001:db8:0:1::1", None).release()  # another /64
    ticket.release()
    assert running.count == 0


# -- against a server ------------------------------------------------------------------------


def _transport(server: PixmartServer) -> Transport:
    assert server._transport is not None
    return server._transport


def _hold_cart_reads(server: PixmartServer, monkeypatch: pytest.MonkeyPatch) -> Held:
    """Hold every cart read until the test lets them go."""
    assert server.domains is not None and server.domains.commerce.service is not None
    cart = server.domains.commerce.service.cart
    held = Held(cart.view)
    monkeypatch.setattr(cart, "view", held)
    return held


async def _sign_up(server: PixmartServer, *usernames: str) -> None:
    async with raw_client(server) as client:
        await client.hello()
        for request_id, username in enumerate(usernames, start=2):
            made = await client.call(
                CreateAccount(id=request_id, username=username, password=PASSWORD)
            )
            assert isinstance(made, AccountCreated), made


async def _token(server: PixmartServer, username: str) -> str:
    """A session token of ``username`` (its connection closed, the session stays valid)."""
    async with raw_client(server) as client:
        await client.hello()
        login = await client.call(Login(id=2, username=username, password=PASSWORD))
        assert isinstance(login, LoggedIn), login
        return login.token


def _refused_for(reply: Reply, bound: str) -> bool:
    return (
        isinstance(reply, ErrorReply)
        and reply.code == ErrorCode.RATE_LIMITED
        and reply.retry_after is not None
        and reply.details == {"bound": bound}
    )


async def _hello(client: RawClient) -> Reply:
    """The reply to ``client``'s Hello."""
    return await client.call(Hello(id=1, version=PROTOCOL_VERSION, client_id=client.client_id))


async def _hello_from(server: PixmartServer, address: str) -> Reply:
    """The reply to a Hello on a new connection from ``address``."""
    async with raw_client(server, local_addr=(address, 0)) as client:
        return await _hello(client)


async def _resume(client: RawClient, token: str) -> Reply:
    """Hello, then Resume with ``token``; the first reply that is not a welcome."""
    hello = await _hello(client)
    if isinstance(hello, ErrorReply):
        return hello
    return await client.call(Resume(id=2, token=token))


async def _served_quickly(server: PixmartServer, username: str) -> float:
    """Seconds for a new connection from ``NORMAL`` to log in as ``username`` and be served."""
    started = time.perf_counter()
    async with logged_in_raw(server, username, NORMAL) as (client, _):
        reply = await client.call(WhoAmI(id=3))
        assert isinstance(reply, Me), reply
    return time.perf_counter() - started


async def _all_ended(running: RunningRequests) -> None:
    """Wait until no request is counted as running any more."""

    async def ended() -> bool:
        return running.count == 0

    await eventually(ended)


async def test_an_address_cycling_connect_send_reset_is_held_to_its_bound(
    server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_limits(
        server_config,
        max_in_flight=4,
        max_running_requests_per_address=8,
        max_running_requests_per_user=1_000,
    )
    cycles = 40
    async with running_server(config) as server:
        running = _transport(server).running
        await _sign_up(server, "mallory", "alice")
        token = await _token(server, "mallory")
        held = _hold_cart_reads(server, monkeypatch)

        refused = 0
        for cycle in range(cycles):
            async with raw_client(server, local_addr=(ATTACKER, 0)) as client:
                reply = await _resume(client, token)
                if isinstance(reply, Resumed):
                    before = held.calls
                    for request_id in range(10, 14):  # its max_in_flight
                        await client.send(GetCart(id=request_id))

                    async def reached(before: int = before) -> bool:
                        return held.calls == before + 4

                    await eventually(reached)
                else:
                    assert _refused_for(reply, "address"), reply
                    refused += 1
                client.ws.transport.abort()  # reset: its requests run on
            # The dropped connections' requests count: never past the bound.
            assert running.count_from(ATTACKER) <= 8, cycle

        # Two connections' worth ran; every later cycle was refused at once.
        assert held.calls == 8
        assert running.count_from(ATTACKER) == 8
        assert refused == cycles - 2

        # The normal client, from its own address, is served quickly meanwhile ...
        assert await _served_quickly(server, "alice") < NORMAL_SECONDS
        # ... while the attacker's next request is refused (its connection is served on).
        reply = await _hello_from(server, ATTACKER)
        assert _refused_for(reply, "address"), reply

        held.release.set()

        await _all_ended(running)
        assert running.count_from(ATTACKER) == 0 and running.count_from(NORMAL) == 0
        assert not running._by_key and not running._by_user
        # Served again once its requests ended.
        async with raw_client(server, local_addr=(ATTACKER, 0)) as client:
            assert isinstance(await _resume(client, token), Resumed)


async def test_one_account_over_two_addresses_is_held_to_the_user_bound(
    server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_limits(
        server_config,
        max_in_flight=4,
        max_running_requests_per_address=100,
        max_running_requests_per_user=6,
    )
    async with running_server(config) as server:
        running = _transport(server).running
        await _sign_up(server, "mallory", "alice")
        held = _hold_cart_reads(server, monkeypatch)
        async with AsyncExitStack() as stack:
            one, mallory = await stack.enter_async_context(
                logged_in_raw(server, "mallory", ATTACKER)
            )
            two, _ = await stack.enter_async_context(logged_in_raw(server, "mallory", ATTACKER_TOO))
            for request_id in range(10, 14):
                await one.send(GetCart(id=request_id))

            async def four() -> bool:
                return held.calls == 4

            await eventually(four)
            await two.send(GetCart(id=10))
            await two.send(GetCart(id=11))
            refused = await two.call(GetCart(id=12))
            assert _refused_for(refused, "user"), refused
            assert running.count_of(mallory) == 6
            # Another user, from the normal address, is served quickly.
            assert await _served_quickly(server, "alice") < NORMAL_SECONDS
            held.release.set()
            for _ in range(4):
                assert not isinstance(await one.recv_reply(), ErrorReply)

        await _all_ended(running)
        assert running.count_of(mallory) == 0


async def test_the_server_as_a_whole_is_held_to_its_bound(
    server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_limits(
        server_config,
        max_in_flight=4,
        max_running_requests_per_address=4,
        max_running_requests_per_user=1_000,
        max_running_requests=6,
    )
    async with running_server(config) as server:
        running = _transport(server).running
        await _sign_up(server, "mallory")
        held = _hold_cart_reads(server, monkeypatch)
        async with AsyncExitStack() as stack:
            one, _ = await stack.enter_async_context(logged_in_raw(server, "mallory", ATTACKER))
            two, _ = await stack.enter_async_context(logged_in_raw(server, "mallory", ATTACKER_TOO))
            for request_id in range(10, 14):
                await one.send(GetCart(id=request_id))
            await two.send(GetCart(id=10))
            await two.send(GetCart(id=11))

            async def six() -> bool:
                return held.calls == 6

            await eventually(six)
            reply = await _hello_from(server, NORMAL)
            assert _refused_for(reply, "server"), reply
            held.release.set()

        await _all_ended(running)


@pytest.mark.parametrize("end", ["reply", "error", "cancelled at shutdown"])
async def test_the_count_goes_back_to_zero_whatever_ends_the_requests(
    server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    config = with_limits(server_config, max_in_flight=4)
    async with running_server(config) as server:
        transport = _transport(server)
        running = transport.running
        await _sign_up(server, "mallory")
        assert server.domains is not None and server.domains.commerce.service is not None
        cart = server.domains.commerce.service.cart
        held = Held(cart.view)

        async def fails(*args: object) -> object:
            await held(*args)
            raise RuntimeError("the cart read failed")

        monkeypatch.setattr(cart, "view", fails if end == "error" else held)
        for _ in range(3):  # some connections dropped, their requests running on
            async with logged_in_raw(server, "mallory", ATTACKER) as (client, _):
                before = held.calls
                for request_id in range(10, 14):
                    await client.send(GetCart(id=request_id))

                async def reached(before: int = before) -> bool:
                    return held.calls == before + 4

                await eventually(reached)
                client.ws.transport.abort()
        assert running.count_from(ATTACKER) == 12

        if end == "cancelled at shutdown":
            # The running requests outlast the grace: stop cancels them.
            await transport.stop(grace=0.1)
            assert running.count == 0
            held.release.set()  # the shielded cart reads finish behind
        else:
            held.release.set()

            await _all_ended(running)
        assert not running._by_key and not running._by_user
