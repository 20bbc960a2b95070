"""Client connections cut at random points during uploads and listings, through a TCP proxy.

Two kinds of cuts, both from a fixed seed: the proxy cuts every link right after the server
handled a randomly chosen request and before its reply leaves (the client must re-send it and
the server must not apply it twice), and a background task cuts every link at a random moment
after each reconnect (wherever a request or reply happens to be: half-sent 1 MiB chunks,
half-received batches). The client is the real :class:`~protocol.client.Session`, which heals
by itself.

What the tests prove: every upload completes exactly once (one item per file, no duplicate,
nothing left in the upload area), and every listing, paged in batches of 24, yields each of 300
items exactly once and in order, while the links keep being cut.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from backend.catalogue.repositories import catalogue_repository
from backend.connection import Connection
from backend.server import PixmartServer
from protocol.catalogue_client import iter_items, sha256_of_file, upload_file
from protocol.client import ConnectionState, Session
from protocol.messages.base import Reply, Request
from protocol.messages.catalogue import (
    BeginUpload,
    Browse,
    FinishUpload,
    ItemCreated,
    ItemMetadata,
    ListingFilters,
    SortOrder,
    UploadChunk,
)
from protocol.trust import TrustPolicy
from tests.support import FAST_BACKOFF, StatusRecorder
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.catalogue import stored
from tests.support.load import seed_items, small_thumbnail, write_noise_picture
from tests.support.proxy import TcpProxy

SEED: Final = 8
ITEMS: Final = 300
BATCH: Final = 24
#: Request types whose links may be cut after the server handled them (never the handshake).
CUT_AFTER: Final = (BeginUpload, UploadChunk, FinishUpload, Browse)


@dataclass(frozen=True)
class Chaos:
    """How often links are cut: after handled requests, and at random moments."""

    #: Chance that the link is cut after the server handled a request, before its reply leaves.
    after_request: float
    #: Seconds (low, high) between a reconnect and the next cut at a random moment.
    random_delay: tuple[float, float]


QUICK: Final = Chaos(after_request=0.2, random_delay=(0.005, 0.12))
HEAVY: Final = Chaos(after_request=0.35, random_delay=(0.002, 0.05))


class Cutter:
    """Cuts the proxy's links after chosen requests and at random moments, from one seed."""

    def __init__(self, proxy: TcpProxy, chaos: Chaos, seed: int) -> None:
        self.proxy = proxy
        self.chaos = chaos
        self._after = random.Random(seed)
        self._moments = random.Random(seed + 1)
        #: Requests the server handled whose reply was then cut off, by type.
        self.replies_cut: dict[str, int] = {}
        #: Cuts at random moments.
        self.random_cuts = 0

    def hook(self, server: PixmartServer, monkeypatch: pytest.MonkeyPatch) -> None:
        """Cut the links after some of the requests ``server`` handles (undone by monkeypatch)."""
        original = server.dispatcher.dispatch

        async def dispatch(connection: Connection, request: Request, frame: bytes) -> Reply:
            reply = await original(connection, request, frame)
            if isinstance(request, CUT_AFTER) and self._after.random() < self.chaos.after_request:
                name = type(request).__name__
                self.replies_cut[name] = self.replies_cut.get(name, 0) + 1
                self.proxy.cut()  # the request took effect; its reply is lost
            return reply

        monkeypatch.setattr(server.dispatcher, "dispatch", dispatch)

    async def cut_at_random(self, recorder: StatusRecorder) -> None:
        """Forever: wait until the session is connected, a random while, then cut (a task)."""
        since = 0
        while True:
            await recorder.wait_for(ConnectionState.CONNECTED, since=since, timeout=30)
            await asyncio.sleep(self._moments.uniform(*self.chaos.random_delay))
            since = recorder.mark()
            self.proxy.cut()
            self.random_cuts += 1

    @property
    def total(self) -> int:
        """Every cut so far."""
        return sum(self.replies_cut.values()) + self.random_cuts


@asynccontextmanager
async def cut_session(
    server: PixmartServer, monkeypatch: pytest.MonkeyPatch, chaos: Chaos, seed: int
) -> AsyncIterator[tuple[Session, Cutter, Callable[[], Awaitable[None]]]]:
    """A session through a cutting proxy, the cutter, and a coroutine that starts the chaos.

    The session is logged in (as ``user``) before any cut; the caller starts the cutting when
    its work begins.
    """
    async with TcpProxy(server.port) as proxy:
        session = Session(
            f"wss://127.0.0.1:{proxy.port}",
            TrustPolicy(fingerprint=server.fingerprint),
            backoff=FAST_BACKOFF,
        )
        await session.connect()
        cutter = Cutter(proxy, chaos, seed)
        background: list[asyncio.Task[None]] = []

        async def start() -> None:
            cutter.hook(server, monkeypatch)
            recorder = StatusRecorder(session)
            background.append(asyncio.create_task(cutter.cut_at_random(recorder)))

        try:
            await session.create_account("user", "password123")
            await session.login("user", "password123")
            yield session, cutter, start
        finally:
            for task in background:
                task.cancel()
            outcomes = await asyncio.gather(*background, return_exceptions=True)
            await session.close()
        # Reached only if the work succeeded: a cutter that failed (e.g. the session never came
        # back within its wait) fails the test too.
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome


# -- uploads ---------------------------------------------------------------------------------


async def _uploads_survive_cuts(
    server: PixmartServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chaos: Chaos,
    files: int,
    min_cuts: int,
) -> None:
    # Noise JPEGs of 1.4-1.9 MB: two 1 MiB chunks each, so cuts land between and inside chunks.
    paths = [
        await asyncio.to_thread(
            write_noise_picture, tmp_path / f"upload-{n}.jpg", (1100 + 40 * n, 1000), "JPEG", n
        )
        for n in range(files)
    ]
    hashes = [await asyncio.to_thread(sha256_of_file, path) for path in paths]
    async with cut_session(server, monkeypatch, chaos, SEED) as (session, cutter, start):
        assert session.user is not None
        await start()
        in_flight = asyncio.Semaphore(2)

        async def one(path: Path, sha256: str) -> ItemCreated:
            async with in_flight:
                return await upload_file(
                    session, path, ItemMetadata(title=path.stem), sha256=sha256
                )

        async with asyncio.timeout(60):
            created = await asyncio.gather(
                *(one(path, sha) for path, sha in zip(paths, hashes, strict=True))
            )
        user_id = session.user.id

    assert cutter.total >= min_cuts, (cutter.replies_cut, cutter.random_cuts)
    assert cutter.replies_cut.get("UploadChunk", 0) >= 1, cutter.replies_cut
    # One item per file, each named by the id its client was given, nothing else.
    ids = [reply.item.id for reply in created]
    assert len(set(ids)) == files
    rows = await catalogue_repository(server.db).items(ids)
    assert {row.owner_id for row in rows.values()} == {user_id}
    assert sorted((row.id, row.sha256) for row in rows.values()) == sorted(
        zip(ids, hashes, strict=True)
    )
    assert [reply.item.title for reply in created] == [path.stem for path in paths]
    # No upload left behind, finished or not.
    leftovers = await stored(server)
    assert (leftovers.uploads, leftovers.partial_files, leftovers.items) == (0, 0, files)


async def test_every_upload_completes_once_while_links_are_cut(
    server: PixmartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six 2-chunk uploads, two at a time, with links cut after requests and at random."""
    await _uploads_survive_cuts(server, tmp_path, monkeypatch, QUICK, files=6, min_cuts=5)


@pytest.mark.slow
async def test_many_uploads_complete_once_under_heavy_cutting(
    server: PixmartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen uploads with cuts every few milliseconds."""
    await _uploads_survive_cuts(server, tmp_path, monkeypatch, HEAVY, files=16, min_cuts=20)


# -- listings --------------------------------------------------------------------------------


async def _listings_survive_cuts(
    server: PixmartServer, monkeypatch: pytest.MonkeyPatch, chaos: Chaos, passes: int
) -> None:
    async with cut_session(server, monkeypatch, chaos, SEED) as (session, cutter, start):
        assert session.user is not None
        thumbnails = [small_thumbnail(seed) for seed in range(3)]
        seeded = await seed_items(
            server.db,
            [session.user.id],
            ITEMS,
            thumbnails=thumbnails,
            preview=thumbnails[0],
            derivatives=catalogue_of(server).derivatives,
        )
        rows = await server.db.fetchall("SELECT id, price_cents FROM items")
        price = {int(row[0]): int(row[1]) for row in rows}
        expected = {
            SortOrder.NEWEST: sorted(seeded, reverse=True),  # created_at grows with the id
            SortOrder.PRICE_UP: sorted(seeded, key=lambda i: (price[i], i)),
            SortOrder.PRICE_DOWN: sorted(seeded, key=lambda i: (-price[i], -i)),
        }
        await start()
        async with asyncio.timeout(60):
            for n in range(passes):
                order = list(SortOrder)[n % len(SortOrder)]
                listed = [
                    card.id
                    async for card in iter_items(
                        session, ListingFilters(mine=True), order, batch=BATCH
                    )
                ]
                assert listed == expected[order], f"pass {n} ({order})"
    assert cutter.replies_cut.get("Browse", 0) >= 1, cutter.replies_cut
    assert cutter.random_cuts >= 1


async def test_every_listing_yields_each_item_once_while_links_are_cut(
    server: PixmartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six passes over 300 items in batches of 24 (three sort orders) with links cut."""
    await _listings_survive_cuts(server, monkeypatch, QUICK, passes=6)


@pytest.mark.slow
async def test_listings_survive_heavy_cutting(
    server: PixmartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty passes with cuts every few milliseconds."""
    await _listings_survive_cuts(server, monkeypatch, HEAVY, passes=30)
