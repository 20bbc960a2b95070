"""``pixmart-server migrate-data``: a real shop moves from SQLite into PostgreSQL, all or nothing.

The shop is built by a real server on SQLite: three accounts (one an admin), public and private
items with tags, a deleted item (so SQLite's AUTOINCREMENT remembers an id no row holds), an
order, a cart and an unfinished upload. The test servers run without the image model, so
embeddings of two model versions are written straight into the file once the server has
stopped. The command then copies the file into a fresh PostgreSQL database, and every row is
compared with its source: ids, booleans, blobs, the search text and the vectors. The refusals
(a target in use, a source at another schema version, a copy that fails or disagrees) each
leave the target as it was, and no output ever shows the database password. Last, a server
started on the copy serves the same shop: a migrated user logs in and sees the same listing and
search results, the pictures' files included.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import numpy as np
import pytest

from backend import cli
from backend.config import ServerConfig
from backend.server import PixmartServer
from backend.storage import migrate_data
from backend.storage.database import Database, discover_migrations
from protocol import alerts_client as alerts
from protocol import commerce_client as shop
from protocol import favourites_client as favourites
from protocol import inbox_client as inbox
from protocol.catalogue_client import delete_items, download_original, edit_item, iter_items
from protocol.client import Session
from protocol.messages.catalogue import BeginUpload, ItemMetadata, ListingFilters, UploadState
from protocol.messages.inbox import NoticeKind
from tests.support import pinned_session
from tests.support.catalogue import account, jpeg, upload
from tests.support.commerce import PASSWORD

# Each test runs both engines itself (a SQLite source, a PostgreSQL target): the PostgreSQL pass
# of the suite would only repeat it.
pytestmark = pytest.mark.sqlite_only

DIMENSIONS = 1280
#: Tags in the order the sellers typed them, which is not the alphabetical one.
LISTINGS: dict[str, dict[str, Any]] = {
    "Sunset over the bay": {
        "seller": "alice",
        "price_cents": 1250,
        "stock": 5,
        "tags": ["sunset", "beach", "red-sky"],
    },
    "Harbour at night": {
        "seller": "alice",
        "price_cents": 300,
        "stock": 2,
        "tags": ["night", "harbour"],
    },
    "Secret garden": {
        "seller": "alice",
        "price_cents": 999,
        "stock": 1,
        "tags": ["garden", "roses"],
        "public": False,
    },
    "Mountain dawn": {
        "seller": "carol",
        "price_cents": 4500,
        "stock": 3,
        "tags": ["mountain", "sunset"],
        "description": "Crisp morning light, like a fresh éclair",
    },
}
#: What alice searches for: tag words, a word of a hyphenated tag, a private item's tag, and a
#: word typed without the accent the description has.
QUERIES = ("sunset", "sky", "roses", "eclair")

Run = Callable[..., Awaitable[tuple[int, str]]]


@dataclass(frozen=True)
class Shop:
    """A stopped server's data dir and what its clients saw before it stopped."""

    data_dir: Path
    ids: dict[str, int]
    deleted_id: int
    listing: list[int]
    found: dict[str, list[int]]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pixmart.sqlite3"


async def _build_shop(config: ServerConfig, pictures: Path) -> Shop:
    """Run a server on SQLite, fill it as its users would, stop it; add admin and embeddings."""
    server = PixmartServer(config)
    await server.start()
    try:
        async with AsyncExitStack() as stack:
            users = {name: await account(stack, server, name) for name in ("alice", "bob", "carol")}
            # A saved search that the sunset matches when listed: an alert in carol's inbox.
            await alerts.save_search(users["carol"], ListingFilters(tags=["sunset"], text="bay"))
            ids: dict[str, int] = {}
            for seed, (title, fields) in enumerate(LISTINGS.items()):
                seller = users[fields["seller"]]
                listing = {key: value for key, value in fields.items() if key != "seller"}
                created = await upload(seller, pictures, jpeg(seed), title, **listing)
                ids[title] = created.item.id
            deleted_id = (await upload(users["alice"], pictures, jpeg(99), "Dunes")).item.id
            await delete_items(users["alice"], [deleted_id])

            bob = users["bob"]
            await shop.add_to_cart(bob, ids["Sunset over the bay"], 2)
            cart = await shop.add_to_cart(bob, ids["Harbour at night"], 1)
            await shop.checkout(bob, cart.total_cents, shop.new_checkout_key())
            await shop.add_to_cart(bob, ids["Mountain dawn"], 1)

            # Favourites, and the inbox notices a price drop sends their keepers (bob reads his).
            sunset = ids["Sunset over the bay"]
            await favourites.add_favourite(bob, sunset)
            await favourites.add_favourite(users["carol"], sunset)
            await edit_item(users["alice"], sunset, price_cents=1100)
            await inbox.mark_all_read(bob)
            await _until_alerted(users["carol"])

            # An upload begun and never finished: its row waits for the rest of the bytes.
            unfinished = jpeg(98)
            begin = BeginUpload(
                sha256=hashlib.sha256(unfinished).hexdigest(),
                size=len(unfinished),
                metadata=ItemMetadata(title="Unfinished"),
            )
            await users["carol"].request(begin, UploadState)

            alice = users["alice"]
            listing_ids = [card.id async for card in iter_items(alice)]
            found = {
                query: [card.id async for card in iter_items(alice, ListingFilters(text=query))]
                for query in QUERIES
            }
    finally:
        await server.stop()
    _add_embeddings_and_admin(config.db_path)
    return Shop(config.data_dir, ids, deleted_id, listing_ids, found)


async def _until_alerted(session: Session, timeout: float = 10.0) -> None:
    """Wait until the saved search's alert (matched off the request path) is in the inbox."""
    async with asyncio.timeout(timeout):
        while not any(
            notice.kind is NoticeKind.ALERT_MATCH
            for notice in (await inbox.inbox_batch(session)).notices
        ):
            await asyncio.sleep(0.05)


def _vector(seed: int) -> np.ndarray[Any, np.dtype[np.float16]]:
    """An L2-normalised float16 vector, as the vision domain stores them."""
    values = np.random.default_rng(seed).standard_normal(DIMENSIONS)
    return (values / np.linalg.norm(values)).astype(np.float16)


def _add_embeddings_and_admin(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        pictures = [row[0] for row in conn.execute("SELECT sha256 FROM pictures ORDER BY sha256")]
        conn.executemany(
            "INSERT INTO embeddings"
            " (sha256, model_version, vector, suggestions, created_at, labels_version)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    sha,
                    "test-v1" if n == 0 else "test-v2",
                    _vector(n).astype("<f2").tobytes(),
                    msgspec.msgpack.encode([["sunset", 0.75]]),
                    1_700_000_000.5 + n,
                    n % 2,
                )
                for n, sha in enumerate(pictures)
            ],
        )
        conn.executemany(
            "INSERT INTO picture_classes (sha256, class_id, probability) VALUES (?, ?, ?)",
            [(sha, 970 + n, 0.5) for n, sha in enumerate(pictures)]
            + [(sha, 0, 0.0625) for sha in pictures[1:]],
        )
        conn.execute("UPDATE users SET is_admin = 1 WHERE username = 'alice'")
        # An item still waiting to be matched against the saved searches, as a server killed
        # before matching it leaves the backlog.
        conn.execute(
            "INSERT INTO alert_backlog (item_id, version, queued_at, not_before, attempts)"
            " SELECT max(id), 3, 1700000000.25, 1700000001.5, 1 FROM items WHERE true"
            " ON CONFLICT (item_id) DO NOTHING"
        )


@pytest.fixture
async def sqlite_shop(server_config: ServerConfig, tmp_path: Path) -> Shop:
    """A shop a SQLite server built (whatever engine the rest of the suite runs on)."""
    config = replace(server_config, database=None, data_dir=tmp_path / "sqlite-shop")
    return await _build_shop(config, tmp_path / "pictures")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], pg_url: str) -> Run:
    """Runs ``pixmart-server migrate-data ARGS``; returns its status and all it printed.

    Whatever it printed, the database password is not in it.
    """
    password = urlsplit(pg_url).password
    assert password

    async def run_command(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        # The CLI runs its own event loop: not on the test's.
        status = await asyncio.to_thread(cli.main, ["migrate-data", *args])
        out, err = capsys.readouterr()
        assert password not in out + err
        return status, out + err

    return run_command


@pytest.fixture
async def target(pg_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to the PostgreSQL database the shop is copied into."""
    conn = await asyncpg.connect(pg_url)
    try:
        yield conn
    finally:
        await conn.close()


def _sqlite_rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        return sorted(conn.execute(sql).fetchall())


async def _pg_rows(conn: asyncpg.Connection[Any], sql: str) -> list[tuple[Any, ...]]:
    # Booleans as SQLite stores them, so rows compare directly.
    return sorted(
        tuple(int(value) if isinstance(value, bool) else value for value in row)
        for row in await conn.fetch(sql)
    )


def _tables(db_path: Path) -> list[str]:
    """The shop's tables; the text index is not one (PostgreSQL has a column for it), nor is
    the alert backlog's state (each database's own bound and count of items it dropped)."""
    rows = _sqlite_rows(
        db_path,
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'items_fts%'"
        " AND name != 'alert_backlog_state'",
    )
    return [str(row[0]) for row in rows]


def _columns(db_path: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _indexes(conn: asyncpg.Connection[Any]) -> list[str]:
    rows = await conn.fetch("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")
    return sorted(str(row[0]) for row in rows)


async def _count(conn: asyncpg.Connection[Any], table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def test_copies_the_whole_shop(
    sqlite_shop: Shop, run: Run, pg_url: str, target: asyncpg.Connection[Any]
) -> None:
    before = _file_hash(sqlite_shop.db_path)
    indexes = await _indexes(target)

    status, output = await run("--from", f"sqlite:{sqlite_shop.data_dir}", "--to", pg_url)

    assert status == 0, output
    assert "pixmart:***@" in output
    assert f"blob folder ({sqlite_shop.data_dir / 'blobs'})" in output
    assert "its keyring.json included" in output and "same master key" in output
    assert _file_hash(sqlite_shop.db_path) == before  # the source was only read
    assert await _indexes(target) == indexes  # dropped for the copy, built again after

    # Every column of every row of every table is the same, booleans aside (0/1 there, BOOLEAN
    # here); the vectors are compared below, in their own format.
    for table in _tables(sqlite_shop.db_path):
        columns = [c for c in _columns(sqlite_shop.db_path, table) if c != "vector"]
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        expected = _sqlite_rows(sqlite_shop.db_path, sql)
        assert expected, f"the shop has no {table}: the test would prove nothing"
        assert await _pg_rows(target, sql) == expected, table
        assert f"  {table} " in output

    assert await target.fetchval("SELECT is_admin FROM users WHERE username = 'alice'") is True
    assert await target.fetchval("SELECT count(*) FROM tags WHERE starter") > 0
    assert await target.fetchval(
        "SELECT public FROM items WHERE id = $1", sqlite_shop.ids["Secret garden"]
    ) is False
    # The search text holds the tags in the order the seller gave them, as the catalogue writes.
    tags_text = dict(await target.fetch("SELECT id, tags_text FROM items"))
    assert tags_text == {
        sqlite_shop.ids[title]: " ".join(fields["tags"]) for title, fields in LISTINGS.items()
    }
    beach = await target.fetch("SELECT id FROM items WHERE search @@ 'beach'::tsquery")
    assert [row["id"] for row in beach] == [sqlite_shop.ids["Sunset over the bay"]]

    stored = {
        row["sha256"]: (row["model_version"], row["vector"])
        for row in await target.fetch("SELECT sha256, model_version, vector::text FROM embeddings")
    }
    for n, (sha, version) in enumerate(
        _sqlite_rows(sqlite_shop.db_path, "SELECT sha256, model_version FROM embeddings")
    ):
        model_version, text = stored[sha]
        vector = np.array(text.strip("[]").split(","), dtype=np.float32).astype(np.float16)
        assert model_version == version
        assert np.array_equal(vector, _vector(n))

    # New rows get new ids, past the deleted item's too (SQLite's AUTOINCREMENT kept it).
    next_item = await target.fetchval("SELECT nextval(pg_get_serial_sequence('items', 'id'))")
    assert next_item == sqlite_shop.deleted_id + 1 > max(sqlite_shop.ids.values()) + 1
    next_user = await target.fetchval("SELECT nextval(pg_get_serial_sequence('users', 'id'))")
    assert next_user == await target.fetchval("SELECT max(id) + 1 FROM users")


async def test_refuses_a_target_that_holds_a_shop(
    sqlite_shop: Shop, run: Run, pg_url: str, target: asyncpg.Connection[Any]
) -> None:
    source = f"sqlite:{sqlite_shop.db_path}"
    assert (await run("--from", source, "--to", pg_url))[0] == 0
    copied = await _pg_rows(target, "SELECT id, title, stock FROM items")

    status, output = await run("--from", source, "--to", pg_url)

    assert status == 1
    assert output.startswith("pixmart-server: error: ")
    assert "already holds data (users, sessions, pictures" in output
    assert await _pg_rows(target, "SELECT id, title, stock FROM items") == copied
    assert await _count(target, "users") == 3


@pytest.mark.parametrize("offset", [-1, 1], ids=["older", "newer"])
async def test_refuses_a_source_at_another_schema_version(
    offset: int, tmp_path: Path, run: Run, pg_url: str, target: asyncpg.Connection[Any]
) -> None:
    db = Database(tmp_path / "pixmart.sqlite3")
    await db.open()
    await db.close()
    version = len(discover_migrations()) + offset
    with closing(sqlite3.connect(db.path)) as conn:
        conn.execute(f"PRAGMA user_version = {version}")

    status, output = await run("--from", f"sqlite:{tmp_path}", "--to", pg_url)

    assert status == 1
    assert f"is at schema version {version}" in output
    hint = "start pixmart-server once on its data dir" if offset < 0 else "newer than"
    assert hint in output
    assert await _count(target, "tags") == 0


async def test_a_failed_copy_leaves_the_target_as_it_was(
    sqlite_shop: Shop, run: Run, pg_url: str, target: asyncpg.Connection[Any]
) -> None:
    # Users, pictures and items are copied before the embeddings; this vector is refused.
    with closing(sqlite3.connect(sqlite_shop.db_path)) as conn, conn:
        conn.execute(
            "UPDATE embeddings SET vector = ? WHERE model_version = 'test-v1'",
            (np.ones(3, "<f2").tobytes(),),
        )

    indexes = await _indexes(target)

    status, output = await run("--from", f"sqlite:{sqlite_shop.data_dir}", "--to", pg_url)

    assert status == 1
    assert "could not copy embeddings, nothing was copied" in output
    assert "expected 1280 dimensions, not 3" in output
    for table in ("users", "pictures", "items"):
        assert await _count(target, table) == 0
    assert await _indexes(target) == indexes


async def test_a_copy_that_disagrees_with_its_source_is_rolled_back(
    sqlite_shop: Shop,
    run: Run,
    pg_url: str,
    target: asyncpg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A copier bug that changes prices: the totals disagree, so nothing may be committed.
    tables = tuple(
        replace(t, select=t.source_query().replace("i.price_cents,", "i.price_cents + 1,"))
        if t.name == "items"
        else t
        for t in migrate_data.TABLES
    )
    monkeypatch.setattr(migrate_data, "TABLES", tables)

    status, output = await run("--from", f"sqlite:{sqlite_shop.data_dir}", "--to", pg_url)

    assert status == 1
    assert "verification failed, nothing was copied: items: sum of price_cents * stock" in output
    assert await _count(target, "items") == 0
    assert await _count(target, "users") == 0


async def test_refuses_search_text_that_disagrees_with_the_tags(
    sqlite_shop: Shop, run: Run, pg_url: str, target: asyncpg.Connection[Any]
) -> None:
    # The text SQLite searched no longer matches the item's tags: copied as is, PostgreSQL's
    # search would find the item by the wrong words.
    with closing(sqlite3.connect(sqlite_shop.db_path)) as conn, conn:
        conn.execute(
            "UPDATE items_fts SET tags = 'stale' WHERE rowid = ?",
            (sqlite_shop.ids["Harbour at night"],),
        )

    status, output = await run("--from", f"sqlite:{sqlite_shop.data_dir}", "--to", pg_url)

    assert status == 1
    assert "items: 1 items' tags_text differ from their item_tags" in output
    assert await _count(target, "items") == 0


@pytest.mark.parametrize(
    ("source", "to", "message"),
    [
        ("{dir}", "{url}", "--from must be sqlite:PATH"),
        ("sqlite:{dir}/nothing-here", "{url}", "nothing-here: no such file"),
        ("sqlite:{dir}", "sqlite:{dir}", "--to must be a postgresql:// URL"),
    ],
    ids=["no-scheme", "missing", "not-postgres"],
)
async def test_refuses_what_it_cannot_copy(
    source: str, to: str, message: str, tmp_path: Path, run: Run, pg_url: str
) -> None:
    def fill(spec: str) -> str:
        return spec.format(dir=tmp_path, url=pg_url)

    status, output = await run("--from", fill(source), "--to", fill(to))

    assert status == 1
    assert message in output
    assert output.count("\n") == 1


async def test_a_server_on_the_copy_serves_the_same_shop(
    sqlite_shop: Shop, run: Run, pg_url: str, server_config: ServerConfig, tmp_path: Path
) -> None:
    assert (await run("--from", f"sqlite:{sqlite_shop.data_dir}", "--to", pg_url))[0] == 0
    # The data dir goes along, as the summary says: picture files, certificate, cursor secrets.
    data_dir = tmp_path / "postgres-server"
    shutil.copytree(sqlite_shop.data_dir, data_dir)
    server = PixmartServer(replace(server_config, database=pg_url, data_dir=data_dir))
    await server.start()
    try:
        async with pinned_session(server) as alice:
            await alice.login("alice", PASSWORD)
            assert [card.id async for card in iter_items(alice)] == sqlite_shop.listing
            for query, found in sqlite_shop.found.items():
                filters = ListingFilters(text=query)
                assert [card.id async for card in iter_items(alice, filters)] == found, query
            sunset = sqlite_shop.ids["Sunset over the bay"]
            original, _ = await download_original(alice, sunset)
            assert original == jpeg(0)
            # A new item takes the next id, past the deleted one.
            created = await upload(alice, tmp_path / "pictures", jpeg(97), "Fresh")
            assert created.item.id == sqlite_shop.deleted_id + 1
        async with pinned_session(server) as bob:
            await bob.login("bob", PASSWORD)
            [placed] = [order async for order in shop.iter_orders(bob)]
            cart = await shop.get_cart(bob)
            assert [line.item_id for line in cart.lines] == [sqlite_shop.ids["Mountain dawn"]]
            order = (await shop.checkout(bob, cart.total_cents, shop.new_checkout_key())).order
            assert order.id == placed.id + 1
    finally:
        await server.stop()
