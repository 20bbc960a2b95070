"""State shared by server instances on one PostgreSQL database, two instances in one process.

Each instance has its own data dir, so nothing passes through a file: a request applied by A and
retried on B is answered from the database and applied once (also when both receive it at once,
and when A died holding it); failed logins and sign-ups count against the same limits on both;
a cursor issued by A pages on B; and of two instances entering the same background job at once,
exactly one runs it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.config import Limits, ServerConfig, SessionPolicy
from backend.replay_postgres import PostgresReplayCache
from backend.server import PixmartServer
from backend.storage.postgres import PostgresDatabase
from protocol import codec
from protocol.catalogue_client import browse
from protocol.errors import ErrorCode
from protocol.messages.accounts import CreateAccount, LoggedIn, Login
from protocol.messages.base import ErrorReply, Ok, Reply
from protocol.messages.commerce import AddToCart, CartView
from tests.support import RawClient, pinned_session, raw_client, running_server
from tests.support.commerce import PASSWORD, list_item, sign_up

pytestmark = pytest.mark.timeout(120)


def instance_config(pg_url: str, data_dir: Path, **policy: float) -> ServerConfig:
    """An instance of the shop on ``pg_url`` with a data dir of its own."""
    sessions = {"max_accounts_per_address": 10_000, "max_accounts_total": 10_000, **policy}
    return ServerConfig(
        database=pg_url,
        data_dir=data_dir,
        port=0,
        enable_vision=False,
        limits=Limits(max_unauthenticated_per_address=1_000),
        sessions=SessionPolicy(**sessions),  # type: ignore[arg-type]
    )


@dataclass
class Pair:
    """Two instances of one shop."""

    a: PixmartServer
    b: PixmartServer


async def start_pair(stack: AsyncExitStack, pg_url: str, tmp_path: Path, **policy: float) -> Pair:
    """Start instances A and B on ``pg_url``; stopped when ``stack`` closes."""
    a = await stack.enter_async_context(
        running_server(instance_config(pg_url, tmp_path / "a", **policy))
    )
    b = await stack.enter_async_context(
        running_server(instance_config(pg_url, tmp_path / "b", **policy))
    )
    return Pair(a, b)


@pytest.fixture
async def pair(pg_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two instances on one fresh database, with the default login limits."""
    async with AsyncExitStack() as stack:
        yield await start_pair(stack, pg_url, tmp_path)


async def raw_login(client: RawClient, username: str, password: str = PASSWORD) -> Reply:
    """Log ``client`` in with a raw Login (request id 2)."""
    return await client.call(Login(id=2, username=username, password=password))


async def seller_item(server: PixmartServer, tmp_path: Path, stock: int = 10) -> int:
    """An item listed on ``server`` by a fresh seller; its id."""
    async with pinned_session(server) as seller:
        await sign_up(seller, "seller")
        return await list_item(seller, tmp_path / "pictures", stock=stock)


def quantity(reply: Reply) -> int:
    assert isinstance(reply, CartView), reply
    return sum(line.quantity for line in reply.cart.lines)


# -- the replay cache ----------------------------------------------------------------------------


async def test_request_retried_on_another_instance_is_applied_once(
    pair: Pair, tmp_path: Path
) -> None:
    item_id = await seller_item(pair.a, tmp_path)
    client_id = secrets.token_hex(16)
    async with pinned_session(pair.a) as buyer:
        await sign_up(buyer, "buyer")
    add = codec.encode(AddToCart(id=7, item_id=item_id, quantity=1))
    async with raw_client(pair.a) as on_a:
        on_a.client_id = client_id
        await on_a.hello()
        assert isinstance(await raw_login(on_a, "buyer"), LoggedIn)
        await on_a.send_frame(add)
        assert quantity(await on_a.recv_reply()) == 1
    # The link dropped before the reply arrived, say; the client reconnects to B and re-sends.
    async with raw_client(pair.b) as on_b:
        on_b.client_id = client_id
        await on_b.hello()
        assert isinstance(await raw_login(on_b, "buyer"), LoggedIn)
        await on_b.send_frame(add)
        assert quantity(await on_b.recv_reply()) == 1, "applied twice"
        # The same id for another request is refused, as on one server.
        reused = await on_b.call(AddToCart(id=7, item_id=item_id, quantity=3))
        assert isinstance(reused, ErrorReply) and reused.code is ErrorCode.CONFLICT
        fresh = await on_b.call(AddToCart(id=8, item_id=item_id, quantity=1))
        assert quantity(fresh) == 2


async def test_request_sent_to_both_instances_at_once_is_applied_once(
    pair: Pair, tmp_path: Path
) -> None:
    item_id = await seller_item(pair.a, tmp_path)
    client_id = secrets.token_hex(16)
    async with pinned_session(pair.a) as buyer:
        await sign_up(buyer, "buyer")
    async with raw_client(pair.a) as on_a, raw_client(pair.b) as on_b:
        for client in (on_a, on_b):
            client.client_id = client_id
            await client.hello()
            assert isinstance(await raw_login(client, "buyer"), LoggedIn)
        request = AddToCart(id=9, item_id=item_id, quantity=1)
        replies = await asyncio.gather(on_a.call(request), on_b.call(request))
        assert [quantity(reply) for reply in replies] == [1, 1]
        after = await on_a.call(AddToCart(id=10, item_id=item_id, quantity=1))
        assert quantity(after) == 2


@pytest.fixture
async def two_caches(pg_url: str) -> AsyncIterator[tuple[PostgresReplayCache, ...]]:
    """The replay caches of two instances (each with its own pool and owner lock)."""
    async with AsyncExitStack() as stack:
        caches = []
        for _ in range(2):
            db = PostgresDatabase(pg_url, min_size=1, max_size=4)
            await db.open(migrate=False)
            stack.push_async_callback(db.close)
            cache = PostgresReplayCache(db)
            await cache.start()
            stack.push_async_callback(cache.close)
            caches.append(cache)
        yield tuple(caches)


async def test_claim_of_a_dead_instance_is_taken_over(
    two_caches: tuple[PostgresReplayCache, PostgresReplayCache],
) -> None:
    first, second = two_caches
    started, never = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def stuck() -> Reply:
        runs.append("first")
        started.set()
        await never.wait()
        return Ok(id=1)

    async def quick() -> Reply:
        runs.append("second")
        return Ok(id=1)

    holder = asyncio.create_task(first.run("c" * 32, 5, 1, b"f", stuck))
    await started.wait()
    waiter = asyncio.create_task(second.run("c" * 32, 5, 1, b"f", quick))
    await asyncio.sleep(0.2)
    assert not waiter.done(), "answered while the first instance still runs the request"
    # The first instance dies: its owner lock goes with its connection.
    await first.close()
    assert isinstance(await asyncio.wait_for(waiter, 10), Ok)
    assert runs == ["first", "second"]
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    # A retry now is answered from the stored reply, without running anything.
    assert isinstance(await second.run("c" * 32, 5, 1, b"f", quick), Ok)
    assert runs == ["first", "second"]


async def test_failed_request_is_not_kept(
    two_caches: tuple[PostgresReplayCache, PostgresReplayCache],
) -> None:
    first, second = two_caches

    async def fails() -> Reply:
        raise ValueError("refused")

    with pytest.raises(ValueError):
        await first.run("d" * 32, 5, 1, b"f", fails)
    assert isinstance(await second.run("d" * 32, 5, 1, b"f", _ok), Ok)


async def _ok() -> Reply:
    return Ok(id=1)


# -- login and sign-up limits --------------------------------------------------------------------


async def test_failed_logins_count_on_every_instance(pg_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        pair = await start_pair(stack, pg_url, tmp_path, max_failures_per_account=4)
        async with pinned_session(pair.a) as owner:
            await owner.create_account("victim", PASSWORD)
        codes = []
        for server in (pair.a, pair.b, pair.a, pair.b, pair.a):
            async with raw_client(server) as client:
                await client.hello()
                reply = await raw_login(client, "victim", "wrong-password")
                assert isinstance(reply, ErrorReply)
                codes.append(reply.code)
        # Two failures on each instance: neither alone reached 4, the shop did.
        assert codes == [ErrorCode.UNAUTHENTICATED] * 4 + [ErrorCode.RATE_LIMITED]
        async with raw_client(pair.b) as client:
            await client.hello()
            locked = await raw_login(client, "victim")
            assert isinstance(locked, ErrorReply) and locked.code is ErrorCode.RATE_LIMITED


async def test_people_logging_in_together_from_one_address_are_not_refused(
    pair: Pair,
) -> None:
    # An office behind one NAT address: more logins at once than the address may fail. Only
    # failures count against the shared limit; the ones in progress are bounded per process.
    people = [f"colleague{n}" for n in range(30)]
    for name in people:
        await pair.a.accounts.create_account(name, PASSWORD)

    async def log_in(name: str, server: PixmartServer) -> None:
        async with pinned_session(server) as session:
            await session.login(name, PASSWORD)

    await asyncio.gather(
        *(log_in(name, (pair.a, pair.b)[n % 2]) for n, name in enumerate(people))
    )


async def test_sign_ups_count_on_every_instance(pg_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        pair = await start_pair(stack, pg_url, tmp_path, max_accounts_per_address=3)
        codes = []
        for n, server in enumerate((pair.a, pair.b, pair.a, pair.b)):
            async with raw_client(server) as client:
                await client.hello()
                reply = await client.call(
                    CreateAccount(id=2, username=f"newcomer{n}", password=PASSWORD)
                )
                codes.append(reply.code if isinstance(reply, ErrorReply) else "created")
        assert codes == ["created"] * 3 + [ErrorCode.RATE_LIMITED]


# -- cursors -------------------------------------------------------------------------------------


async def test_cursor_issued_by_one_instance_pages_on_the_other(pair: Pair, tmp_path: Path) -> None:
    async with pinned_session(pair.a) as seller:
        await sign_up(seller, "seller")
        listed = [await list_item(seller, tmp_path / "pictures") for _ in range(3)]
        first = await browse(seller, limit=2)
        assert first.cursor is not None
    async with pinned_session(pair.b) as again:
        await again.login("seller", PASSWORD)
        rest = await browse(again, limit=2, cursor=first.cursor)
    seen = [card.id for card in first.items + rest.items]
    assert sorted(seen) == sorted(listed) and rest.cursor is None


# -- background jobs -----------------------------------------------------------------------------


async def test_one_instance_at_a_time_runs_a_job(pg_url: str) -> None:
    async with AsyncExitStack() as stack:
        dbs = []
        for _ in range(2):
            db = PostgresDatabase(pg_url, min_size=1, max_size=4)
            await db.open(migrate=False)
            stack.push_async_callback(db.close)
            dbs.append(db)
        inside, tried = asyncio.Event(), asyncio.Event()
        ran: list[int] = []

        async def job(n: int) -> None:
            if n == 1:
                await inside.wait()  # the second enters while the first holds the job
            async with dbs[n].exclusive_job("test.job") as mine:
                if mine:
                    ran.append(n)
                    inside.set()
                    await tried.wait()
            if n == 1:
                tried.set()

        await asyncio.wait_for(asyncio.gather(job(0), job(1)), 10)
        assert ran == [0]
        # Released after the run: the next round is anyone's.
        async with dbs[1].exclusive_job("test.job") as mine:
            assert mine
        # Other jobs are not held up by this one.
        async with dbs[0].exclusive_job("test.job"), dbs[1].exclusive_job("other") as mine:
            assert mine


async def test_sqlite_runs_every_job(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            running_server(ServerConfig(data_dir=tmp_path / "solo", port=0, enable_vision=False))
        )
        async with (
            server.db.exclusive_job("test.job") as mine,
            server.db.exclusive_job("test.job") as again,
        ):
            assert mine and again


async def test_instances_share_one_cursor_secret(pair: Pair) -> None:
    assert pair.a.db.shared and pair.b.db.shared
    rows = await pair.a.db.fetchall("SELECT name FROM cluster_secrets ORDER BY name")
    assert [row["name"] for row in rows] == ["catalogue.cursors", "commerce.cursors"]
    assert not (pair.a.config.data_dir / "cursor.key").exists()
