"""Provides helpers for load and memory benchmarks and fault tests: clients, pictures, /proc.

* :func:`seed_items` lists many items straight through the storage layer of either engine
  (pictures, previews, items and tags rows, a few shared thumbnails), as fast as one
  transaction allows;
* :func:`small_thumbnail` makes a WebP thumbnail with photo-like detail;
* :func:`write_noise_picture` writes a large incompressible JPEG or PNG (the worst case for
  transfer, hashing and decoding);
* :func:`proc_memory` and :func:`cpu_seconds` read a process's peak RSS and CPU time;
* :func:`percentile` and :func:`summary` turn latency samples into figures;
* :class:`PagingPlan` and :func:`paging_clients` run many logged-in browsing clients in a
  separate process (so client CPU is not counted in the server's, nor the server's in theirs),
  started on a signal from the benchmark and reporting every batch latency and every error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

from backend.atrest.derivatives import PLAIN, DerivativeCodec
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from protocol.catalogue_client import browse
from protocol.client import Backoff, Session
from protocol.messages.catalogue import ItemBatch, PictureMode, Pictures, SortOrder
from protocol.pictures import MemoryPictureStore, use_picture_store
from protocol.trust import TrustPolicy

#: Seconds one benchmark request may take before it counts as an error (a hang, not a latency).
REQUEST_TIMEOUT: Final = 30.0
_TAGS: Final = ("landscape", "city", "night", "portrait", "texture", "sky", "food", "animals")


# -- seeding -------------------------------------------------------------------------------


#: The columns :func:`seed_items` fills, the same in both engines.
_PICTURE_COLUMNS: Final = (
    "sha256 format width height orientation size_bytes clean_sha256 clean_size created_at thumbnail"
    " thumbnail_sha256 thumbnail_size"
).split()
_PREVIEW_COLUMNS: Final = ("sha256", "preview", "preview_sha256", "preview_size")
_ITEM_COLUMNS: Final = (
    "owner_id title description price_cents stock public sha256 created_at updated_at"
).split()


@dataclass(frozen=True)
class _SeedRows:
    """The rows :func:`seed_items` inserts; ``tags[n]`` are the tag names of ``items[n]``."""

    pictures: list[tuple[Any, ...]]
    previews: list[tuple[Any, ...]]
    items: list[tuple[Any, ...]]
    tags: list[list[str]]


async def seed_items(
    db: StorageEngine,
    owner_ids: Sequence[int],
    count: int,
    *,
    thumbnails: Sequence[bytes],
    preview: bytes,
    public_share: float = 0.9,
    seed: int = 7,
    prefix: str = "seeded",
    derivatives: DerivativeCodec = PLAIN,
    unique_thumbnails: bool = False,
) -> list[int]:
    """List ``count`` items in one transaction, straight through the storage layer.

    Every item gets its own picture row (a distinct made-up SHA-256, so nothing is shared by
    accident) whose thumbnail is one of ``thumbnails``; no picture file is written, so the items
    can be listed but not downloaded. Items are owned round-robin by ``owner_ids``, carry two
    starter tags each and are ``created_at`` one second apart, in id order. Both engines get the
    same rows for the same arguments: SQLite through ``executemany``, PostgreSQL through
    ``COPY`` (then ``ANALYZE``, so its planner knows the new sizes at once). Tags are written as
    the catalogue writes them, text search included (SQLite's ``items_fts.tags``, PostgreSQL's
    ``items.tags_text``).

    Args:
        derivatives: The server's :attr:`~backend.catalogue.service.CatalogueService.derivatives`:
            in a shop encrypted at rest each row's thumbnail is sealed with a data key of its
            own, as uploads are (the preview, which listings never read, is sealed once).
            Each row records its derivatives' hashes and sizes, as the catalogue does.
        unique_thumbnails: Make every item's thumbnail distinct (a 4-byte suffix: nothing
            decodes seeded thumbnails), so clients that keep pictures by content find none
            shared by accident; otherwise items share the few ``thumbnails``.

    Returns:
        The new item ids, oldest first.
    """
    plain = list(thumbnails)
    if unique_thumbnails:
        plain = [plain[n % len(plain)] + n.to_bytes(4, "big") for n in range(count)]
    stored: Sequence[bytes] = plain
    stored_preview = preview
    if derivatives.sealer is not None:
        stored = [derivatives.seal(plain[n % len(plain)], "thumbnail") for n in range(count)]
        stored_preview = derivatives.seal(preview, "preview")
    rows_thumbnails = [
        (stored[n], _digest(plain[n % len(plain)])) for n in range(max(len(stored), len(plain)))
    ]
    tag_ids = {str(row[0]): int(row[1]) for row in await db.fetchall("SELECT name, id FROM tags")}
    rows = _seed_rows(
        count,
        sorted(tag_ids),
        owner_ids,
        rows_thumbnails,
        (stored_preview, _digest(preview)),
        public_share,
        seed,
        prefix,
    )
    if isinstance(db, Database):
        return await _insert_sqlite(db, rows, tag_ids)
    ids = await _insert_postgres(db, rows, tag_ids)
    await db.execute("ANALYZE pictures, picture_previews, items, item_tags")
    return ids


def _digest(data: bytes) -> tuple[str, int]:
    """The hash and size a picture row records of a plain derivative."""
    return hashlib.sha256(data).hexdigest(), len(data)


def _seed_rows(
    count: int,
    tag_names: Sequence[str],
    owner_ids: Sequence[int],
    thumbnails: Sequence[tuple[bytes, tuple[str, int]]],
    preview: tuple[bytes, tuple[str, int]],
    public_share: float,
    seed: int,
    prefix: str,
) -> _SeedRows:
    """The rows of :func:`seed_items`, drawn from ``seed`` (the same for both engines)."""
    rng = random.Random(seed)
    start = time.time() - count
    pictures: list[tuple[Any, ...]] = []
    previews: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    for n in range(count):
        sha = hashlib.sha256(f"{prefix}-{seed}-{n}".encode()).hexdigest()
        thumbnail, (digest, size) = thumbnails[n % len(thumbnails)]
        created = start + n
        pictures.append(
            (sha, "JPEG", 3000, 2000, 1, 2_000_000, sha, 1_900_000, created, thumbnail)
            + (digest, size)
        )
        previews.append((sha, preview[0], *preview[1]))
        public = rng.random() < public_share
        owner = owner_ids[n % len(owner_ids)]
        items.append(
            (
                owner,
                f"Seeded item {n}",
                "Listed by the load helpers.",
                rng.randrange(0, 50_000),
                rng.randrange(1, 20),
                public,
                sha,
                created,
                created,
            )
        )
    names = sorted(set(_TAGS) & set(tag_names)) or list(tag_names)
    tags = [rng.sample(names, min(2, len(names))) for _ in range(count)]
    return _SeedRows(pictures, previews, items, tags)


def _insert(table: str, columns: Sequence[str]) -> str:
    """SQLite's INSERT of one row of ``columns``."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _tag_pairs(
    ids: Sequence[int], rows: _SeedRows, tag_ids: dict[str, int]
) -> list[tuple[int, int]]:
    """The ``item_tags`` rows of the new items."""
    return [
        (item_id, tag_ids[name])
        for item_id, names in zip(ids, rows.tags, strict=True)
        for name in names
    ]


async def _insert_sqlite(db: Database, rows: _SeedRows, tag_ids: dict[str, int]) -> list[int]:
    """Insert the rows with ``executemany``; return the new item ids in order."""
    async with db.transaction() as conn:
        await conn.executemany(_insert("pictures", _PICTURE_COLUMNS), rows.pictures)
        await conn.executemany(_insert("picture_previews", _PREVIEW_COLUMNS), rows.previews)
        async with conn.execute("SELECT coalesce(max(id), 0) FROM items") as cursor:
            first_row = await cursor.fetchone()
        assert first_row is not None
        await conn.executemany(_insert("items", _ITEM_COLUMNS), rows.items)
        async with conn.execute(
            "SELECT id FROM items WHERE id > ? ORDER BY id", (int(first_row[0]),)
        ) as cursor:
            ids = [int(row[0]) for row in await cursor.fetchall()]
        await conn.executemany(
            "INSERT INTO item_tags (item_id, tag_id) VALUES (?, ?)", _tag_pairs(ids, rows, tag_ids)
        )
        # The catalogue keeps an item's tag names in its text-search row too.
        await conn.executemany(
            "UPDATE items_fts SET tags = ? WHERE rowid = ?",
            [
                (" ".join(names), item_id)
                for item_id, names in zip(ids, rows.tags, strict=True)
                if names
            ],
        )
    return ids


async def _insert_postgres(
    db: PostgresDatabase, rows: _SeedRows, tag_ids: dict[str, int]
) -> list[int]:
    """Copy the rows in with ``COPY``; return the new item ids in order."""
    async with db.transaction() as conn:
        await conn.copy_records_to_table(
            "pictures", records=rows.pictures, columns=_PICTURE_COLUMNS
        )
        await conn.copy_records_to_table(
            "picture_previews", records=rows.previews, columns=_PREVIEW_COLUMNS
        )
        first = await conn.fetchval("SELECT coalesce(max(id), 0) FROM items")
        # The catalogue keeps an item's tag names in ``tags_text`` too, for text search.
        await conn.copy_records_to_table(
            "items",
            records=[
                (*item, " ".join(names)) for item, names in zip(rows.items, rows.tags, strict=True)
            ],
            columns=(*_ITEM_COLUMNS, "tags_text"),
        )
        found = await conn.fetch("SELECT id FROM items WHERE id > $1 ORDER BY id", first)
        ids = [int(row[0]) for row in found]
        await conn.copy_records_to_table(
            "item_tags", records=_tag_pairs(ids, rows, tag_ids), columns=("item_id", "tag_id")
        )
    return ids


def small_thumbnail(seed: int, size: tuple[int, int] = (256, 171)) -> bytes:
    """A WebP thumbnail with photo-like detail (smooth gradient plus noise), a few KB."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + rng.uniform(-0.4, 0.4) * x + rng.uniform(-0.4, 0.4) * y] * 3, axis=-1)
    base += rng.integers(-24, 25, base.shape)
    picture = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


def write_noise_picture(path: Path, size: tuple[int, int], fmt: str, seed: int) -> Path:
    """Write uniform RGB noise as a JPEG (quality 95) or PNG (fast compression) at ``path``.

    Noise does not compress: about 1.2 bytes per pixel as JPEG q95, 3 as PNG, so the file size
    is chosen through ``size``. It is the worst case for transfer, hashing and decoding alike.
    """
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"quality": 95} if fmt == "JPEG" else {"compress_level": 1}
    Image.fromarray(pixels, "RGB").save(path, fmt, **options)
    return path


# -- processes -----------------------------------------------------------------------------


def proc_memory(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak resident set) and ``VmRSS`` (resident now) of a live process, in bytes."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0]) * 1024
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a live process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name may hold spaces; the fields we want come after its closing paren.
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


# -- figures -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values, np.float64), q))


def summary(values: Sequence[float]) -> str:
    """``min - max`` of a few per-run figures, for a row's ``spread``."""
    return f"runs {min(values):.3g} - {max(values):.3g}" if values else ""


# -- browsing clients in their own process -------------------------------------------------


@dataclass(frozen=True)
class PagingPlan:
    """What one client process does.

    Attributes:
        url: The server's ``wss://`` address.
        fingerprint: The server certificate's fingerprint, pinned by every session.
        tokens: Session tokens of logged-in users; client ``n`` resumes with ``tokens[n % len]``.
        clients: Sessions (connections) this process opens.
        pages: Timed batches each client asks for in each round, following cursors (and
            starting over at the end of the listing).
        batch: Items per batch.
        min_interval: Least seconds between one client's request starts, keeping a lone
            client under the server's per-connection rate limit.
        first_client: Index of this process's first client among all processes (for the sort
            order and token of each client).
        think: ``(low, high)`` seconds a client waits after each batch before asking for the
            next, drawn uniformly (seeded by client), as a person looking at the pictures
            would; ``None`` asks again at once (flat out, closed loop).
        pictures: How the clients ask for thumbnails (``INLINE``: every card carries its
            picture, as before content addressing).
        window: Batches each client pages through untimed before the timed ones, which then
            go over the same batches again and again (starting over at the top after
            ``window``): a person scrolling back over what they saw. ``None``: one untimed
            batch, and the timed ones continue the listing.
        store_bytes: The size of each session's picture store (the thumbnails it keeps);
            ``None``, the library's default (48 MB: far more than a few rounds of paging
            forward need, in as many sessions as a process runs).
    """

    url: str
    fingerprint: str
    tokens: tuple[str, ...]
    clients: int
    pages: int
    batch: int = 24
    min_interval: float = 0.02
    first_client: int = 0
    think: tuple[float, float] | None = None
    pictures: PictureMode = PictureMode.UNSENT
    window: int | None = None
    store_bytes: int | None = None


@dataclass
class PagingResult:
    """What one client process measured.

    Attributes:
        thumbnail_bytes: Of the thumbnails the batches showed (each card has its picture).
        wire_bytes: Of the pictures that came over the wire: inline in batches, or fetched.
    """

    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    batches: int = 0
    items: int = 0
    thumbnail_bytes: int = 0
    wire_bytes: int = 0
    seconds: float = 0.0
    #: CPU seconds the client process used while paging (all its threads).
    cpu_seconds: float = 0.0


_ORDERS: Final = (SortOrder.NEWEST, SortOrder.PRICE_UP, SortOrder.PRICE_DOWN)
#: Sessions one client process connects at once. Two processes set up together, and a server
#: lets 32 connections from one address wait to log in (``max_unauthenticated_per_address``):
#: two groups of 20 went past it on a busy machine and were refused.
_SETUP_GROUP: Final = 15


def paging_clients(plan: PagingPlan, pipe: Connection) -> None:
    """Process entry point: connect the clients, say ``ready``, then page a round on each
    ``go`` and report it, until ``stop`` (or the pipe closes).

    Messages on ``pipe``: sends ``("ready", errors)``; receives ``"go"`` or ``"stop"``; after
    each ``go`` sends ``("done", PagingResult)``. Each round continues the clients' listings
    where the last one left them, on the same connections.
    """
    asyncio.run(_paging_main(plan, pipe))


@dataclass
class _Client:
    """One browsing client: its session and where it is in its listing."""

    session: Session
    number: int
    order: SortOrder
    cursor: str | None = None
    seen: set[int] = field(default_factory=set)
    rng: random.Random = field(default_factory=random.Random)


class _WireCounter:
    """Counts the picture bytes the sessions' replies carry (see :func:`_count_pictures`)."""

    def __init__(self) -> None:
        self.bytes = 0


async def _paging_main(plan: PagingPlan, pipe: Connection) -> None:
    trust = TrustPolicy(fingerprint=plan.fingerprint)
    # Slow reconnects: a benchmark client should never need one; if it does, it is an error.
    backoff = Backoff(initial=0.5, factor=2.0, maximum=2.0)
    wire = _WireCounter()
    clients: list[_Client] = []
    for n in range(plan.clients):
        number = plan.first_client + n
        session = Session(
            plan.url,
            trust,
            token=plan.tokens[number % len(plan.tokens)],
            backoff=backoff,
            client_name="bench-load",
        )
        _count_pictures(session, wire)
        if plan.store_bytes is not None:
            use_picture_store(session, MemoryPictureStore(plan.store_bytes))
        order = _ORDERS[number % len(_ORDERS)]
        clients.append(_Client(session, number, order, rng=random.Random(number)))
    setup_errors: list[str] = []
    try:
        # Connected and resumed in groups: a herd of TLS handshakes is not what is measured.
        for start in range(0, plan.clients, _SETUP_GROUP):
            group = clients[start : start + _SETUP_GROUP]
            outcomes = await asyncio.gather(
                *(_warm_up(client.session, plan, client.order) for client in group),
                return_exceptions=True,
            )
            for n, (client, outcome) in enumerate(zip(group, outcomes, strict=True), start):
                if isinstance(outcome, BaseException):
                    setup_errors.append(f"client {n} setup: {outcome!r}")
                else:
                    client.cursor = outcome
        pipe.send(("ready", setup_errors))
        while await _next_order(pipe) == "go":
            result = PagingResult()
            started, cpu_started = time.perf_counter(), time.process_time()
            wire_before = wire.bytes  # the timed batches' only
            await asyncio.gather(
                *(_page(client, plan, result) for client in clients if client.session.user)
            )
            result.seconds = time.perf_counter() - started
            result.cpu_seconds = time.process_time() - cpu_started
            result.wire_bytes = wire.bytes - wire_before
            pipe.send(("done", result))
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.session.close()


async def _next_order(pipe: Connection) -> str:
    """The benchmark's next word: ``go`` or ``stop`` (a closed pipe is a stop)."""
    try:
        return str(await asyncio.to_thread(pipe.recv))
    except EOFError:
        return "stop"


def _count_pictures(session: Session, wire: _WireCounter) -> None:
    """Add the bytes of the pictures ``session``'s replies carry to ``wire``."""
    request = session.request

    async def counted(message: Any, expect: Any, **kwargs: Any) -> Any:
        reply = await request(message, expect, **kwargs)
        # Before the client fills cards in from its store: what crossed the wire.
        if isinstance(reply, ItemBatch):
            wire.bytes += sum(len(c.thumbnail) for c in reply.items if c.thumbnail)
        elif isinstance(reply, Pictures):
            wire.bytes += sum(len(picture.data) for picture in reply.pictures)
        return reply

    setattr(session, "request", counted)  # noqa: B010 - an instance's method, replaced


async def _warm_up(session: Session, plan: PagingPlan, order: SortOrder) -> str | None:
    """Connect, check the session is logged in, fetch the first batch (or the window's);
    return where the timed batches start."""
    await session.connect()
    if session.user is None:
        raise RuntimeError("the token did not resume a logged-in session")
    cursor: str | None = None
    for _ in range(plan.window or 1):
        async with asyncio.timeout(REQUEST_TIMEOUT):
            page = await browse(
                session, sort=order, limit=plan.batch, cursor=cursor, pictures=plan.pictures
            )
        cursor = page.cursor
    return None if plan.window else cursor


async def _page(client: _Client, plan: PagingPlan, result: PagingResult) -> None:
    """Ask for ``plan.pages`` batches one after the other from where ``client`` is; record
    latencies and errors."""
    loop = asyncio.get_running_loop()
    session, order, rng = client.session, client.order, client.rng
    if plan.think is not None:  # people do not start in step
        await asyncio.sleep(rng.uniform(0, plan.think[1]))
    for number in range(plan.pages):
        if plan.window and number % plan.window == 0:
            client.cursor = None  # back to the top, over the same batches again
            client.seen.clear()
        started = loop.time()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                page: ItemBatch = await browse(
                    session,
                    sort=order,
                    limit=plan.batch,
                    cursor=client.cursor,
                    pictures=plan.pictures,
                )
        except Exception as exc:  # counted, never hidden: a row with errors says so
            result.errors.append(f"{order}: {exc!r}")
            client.cursor = None
            client.seen.clear()
        else:
            elapsed = loop.time() - started
            result.latencies_ms.append(elapsed * 1000)
            result.batches += 1
            result.items += len(page.items)
            result.thumbnail_bytes += sum(len(card.thumbnail or b"") for card in page.items)
            problem = _check_batch(page, plan.batch, client.seen)
            if problem:
                result.errors.append(f"{order}: {problem}")
            client.cursor = page.cursor
            if client.cursor is None:
                client.seen.clear()  # end of the listing: start over, as a person scrolling up
        left = plan.min_interval - (loop.time() - started)
        if plan.think is not None:
            left = max(left, rng.uniform(*plan.think))
        if left > 0:
            await asyncio.sleep(left)


def _check_batch(page: ItemBatch, batch: int, seen: set[int]) -> str | None:
    """What is wrong with a batch of one pass through a listing, or ``None``."""
    if page.cursor is not None and len(page.items) != batch:
        return f"a batch of {len(page.items)} items before the end of the listing"
    if any(not card.thumbnail for card in page.items):
        return "a card without a thumbnail"
    ids = [card.id for card in page.items]
    if seen.intersection(ids) or len(set(ids)) != len(ids):
        return "an item sent twice in one pass"
    seen.update(ids)
    return None


__all__ = [
    "REQUEST_TIMEOUT",
    "PagingPlan",
    "PagingResult",
    "cpu_seconds",
    "paging_clients",
    "percentile",
    "proc_memory",
    "seed_items",
    "small_thumbnail",
    "summary",
    "write_noise_picture",
]
