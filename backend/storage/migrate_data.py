"""Provides ``pixmart-server migrate-data``: copies a whole shop from SQLite into PostgreSQL.

The copy is all or nothing. The PostgreSQL target is first brought to the newest schema, then
one transaction locks every table against writers, checks that the shop is empty, streams each
table in with ``COPY`` (ids included), builds the secondary indexes, moves the identity
sequences past the copied ids and compares row counts and sums with the source; any failure
rolls the whole copy back. The SQLite source is opened read-only, inside one read transaction,
so every table (and every figure the copy is checked against) comes from the same committed
state.

Rows are streamed in batches, never held whole: pictures carry their thumbnails and previews.
Picture files (originals in the data dir's ``blobs`` folder) are not in the database; the
summary reminds the operator that servers on the new database need that folder, with its
``keyring.json``, and the same master key (the thumbnails and previews copied are sealed under
it too).

Where the engines differ, the copy converts: SQLite's 0/1 booleans become BOOLEAN, the
little-endian float16 embedding blobs become ``halfvec``, and ``items.tags_text`` (what
PostgreSQL's text search reads tags from) is filled with the text the catalogue wrote into
SQLite's ``items_fts.tags``: the item's tags in the order the seller gave them, which
``item_tags`` does not keep. The verification checks it holds exactly the item's tags.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiosqlite
import asyncpg
import numpy as np
from numpy.typing import NDArray

from backend.config import ServerConfig
from backend.storage.database import SchemaTooNewError
from backend.storage.database import discover_migrations as sqlite_migrations
from backend.storage.postgres import PostgresDatabase
from backend.storage.urls import is_postgres_url, redact

log = logging.getLogger(__name__)

#: How ``--from`` names the source: ``sqlite:`` followed by the file or its data dir.
SOURCE_PREFIX: Final = "sqlite:"
#: The folder of the data dir the catalogue keeps picture files in (``backend.backup`` copies it
#: under the same name). Not imported from either: this module needs no domain code.
BLOBS: Final = "blobs"
#: Memory for building the indexes after the copy (one build at a time).
INDEX_BUILD_MEMORY: Final = "512MB"

Convert = Callable[[Any], Any]


class MigrationError(Exception):
    """The shop cannot be copied; the message is one line for the operator."""


class VerificationError(MigrationError):
    """The copy disagrees with its source; it was rolled back."""


def _boolean(value: int) -> bool:
    """SQLite's 0/1 as a PostgreSQL BOOLEAN."""
    return bool(value)


def _float16_vector(blob: bytes) -> NDArray[np.float16]:
    """A vector as SQLite stores it (float16, little-endian), as numbers for the codec."""
    if len(blob) % 2:
        raise MigrationError(f"embeddings: a vector of {len(blob)} bytes is no float16 vector")
    return np.frombuffer(blob, dtype="<f2")


def _encode_halfvec(vector: NDArray[np.float16]) -> bytes:
    """pgvector's binary ``halfvec``: dimensions, a reserved zero, big-endian float16 values.

    pgvector checks the dimensions against the column's ``halfvec(N)`` and refuses NaN and
    infinities, so a damaged vector fails the copy instead of landing in the index.
    """
    return struct.pack(">hh", vector.size, 0) + vector.astype(">f2").tobytes()


def _decode_halfvec(data: bytes) -> NDArray[np.float16]:
    """The inverse of :func:`_encode_halfvec` (asyncpg asks for both directions)."""
    (dimensions,) = struct.unpack_from(">h", data)
    return np.frombuffer(data, dtype=">f2", count=dimensions, offset=4).astype("<f2")


@dataclass(frozen=True)
class Table:
    """How one table is copied.

    Attributes:
        name: The table, the same in both engines.
        columns: The target columns, in the order ``select`` returns them.
        select: The SQLite query that reads the rows; ``None``: the same columns of ``name``.
        key: What the default query reads the rows in order of (the primary key: cheap and
            repeatable).
        convert: Conversions of column values that the engines store differently.
        batch: Rows read from SQLite at a time (fewer where rows carry pictures).
        identity: Whether ``id`` is an identity column whose sequence must move past the copy.
    """

    name: str
    columns: tuple[str, ...]
    key: str
    select: str | None = None
    convert: Mapping[str, Convert] = field(default_factory=dict)
    batch: int = 1000
    identity: bool = False

    def source_query(self) -> str:
        """The SQLite query giving the rows to copy, in key order."""
        if self.select is not None:
            return self.select
        return f"SELECT {', '.join(self.columns)} FROM {self.name} ORDER BY {self.key}"

    def converters(self) -> tuple[Convert | None, ...]:
        """Each column's conversion, ``None`` where the value goes across as it is."""
        return tuple(self.convert.get(column) for column in self.columns)


#: Every table of a shop, parents before children (foreign keys are checked as rows arrive).
TABLES: Final = (
    Table(
        "users",
        (
            "id", "username", "username_key", "password_hash", "is_admin", "created_at",
            "password_changed_at",
        ),
        key="id",
        convert={"is_admin": _boolean},
        identity=True,
    ),
    Table(
        "sessions",
        ("token_hash", "user_id", "created_at", "last_seen_at", "expires_at"),
        key="token_hash",
    ),
    Table(
        "pictures",
        (
            "sha256", "format", "width", "height", "orientation", "size_bytes", "clean_sha256",
            "clean_size", "created_at", "thumbnail", "thumbnail_sha256", "thumbnail_size",
        ),
        key="sha256",
        batch=100,  # thumbnails: ~10 KB each
    ),
    Table(
        "picture_previews",
        ("sha256", "preview", "preview_sha256", "preview_size"),
        key="sha256",
        batch=20,  # ~100 KB each
    ),
    Table(
        "items",
        (
            "id", "owner_id", "title", "description", "price_cents", "stock", "public",
            "sha256", "created_at", "updated_at", "tags_text",
        ),
        key="id",
        select=(
            "SELECT i.id, i.owner_id, i.title, i.description, i.price_cents, i.stock,"
            " i.public, i.sha256, i.created_at, i.updated_at, coalesce(f.tags, '')"
            " FROM items i LEFT JOIN items_fts f ON f.rowid = i.id ORDER BY i.id"
        ),
        convert={"public": _boolean},
        identity=True,
    ),
    Table(
        "tags", ("id", "name", "starter"), key="id", convert={"starter": _boolean}, identity=True
    ),
    Table("item_tags", ("item_id", "tag_id"), key="item_id, tag_id"),
    Table(
        "uploads", ("id", "owner_id", "sha256", "size", "metadata", "created_at"), key="id"
    ),
    Table(
        "embeddings",
        ("sha256", "model_version", "vector", "suggestions", "created_at", "labels_version"),
        key="sha256",
        convert={"vector": _float16_vector},
    ),
    Table("picture_classes", ("sha256", "class_id", "probability"), key="sha256, class_id"),
    Table(
        "cart_lines",
        ("user_id", "item_id", "quantity", "title", "price_cents", "added_at", "updated_at"),
        key="user_id, item_id",
    ),
    Table(
        "orders",
        ("id", "user_id", "checkout_key", "total_cents", "currency", "created_at"),
        key="id",
        identity=True,
    ),
    Table(
        "order_lines",
        (
            "id",
            "order_id",
            "item_id",
            "seller_id",
            "title",
            "quantity",
            "unit_price_cents",
            "sold_at",
        ),
        key="id",
        identity=True,
    ),
    Table(
        "favourites",
        ("id", "user_id", "item_id", "title", "price_cents", "added_at"),
        key="id",
        identity=True,
    ),
    Table(
        "notices",
        ("id", "user_id", "kind", "item_id", "text", "created_at", "is_read"),
        key="id",
        convert={"is_read": _boolean},
        identity=True,
    ),
    Table(
        "saved_searches",
        (
            "id", "user_id", "filters", "owner_id", "min_price_cents", "max_price_cents",
            "in_stock", "tag_count", "word_count", "like_label", "like_vector", "like_model",
            "min_similarity", "created_at",
        ),
        key="id",
        convert={"in_stock": _boolean},
        identity=True,
    ),
    Table("saved_search_tags", ("tag", "search_id"), key="tag, search_id"),
    Table(
        "saved_search_words",
        ("word", "search_id", "prefix"),
        key="word, search_id",
        convert={"prefix": _boolean},
    ),
    Table("alert_matches", ("search_id", "item_id", "matched_at"), key="search_id, item_id"),
    # Items still to be matched go across as they are (alert_backlog_state is not copied: the
    # migration seeds it, and its count of dropped items is the source's to log).
    Table(
        "alert_backlog",
        ("item_id", "version", "queued_at", "not_before", "attempts"),
        key="item_id",
    ),
)


@dataclass(frozen=True)
class Check:
    """A figure computed on both engines by the same query, which must agree after the copy."""

    table: str
    what: str
    sql: str


#: What the copy is checked against besides every table's row count. Both engines run the same
#: SQL; answers are compared as sorted rows, so collation never matters.
CHECKS: Final = (
    *(Check(t.name, "row count", f"SELECT count(*) FROM {t.name}") for t in TABLES),
    Check("items", "sum of price_cents * stock", "SELECT sum(price_cents * stock) FROM items"),
    Check("orders", "sum of total_cents", "SELECT sum(total_cents) FROM orders"),
    Check("cart_lines", "sum of quantity", "SELECT sum(quantity) FROM cart_lines"),
    Check("order_lines", "sum of quantity", "SELECT sum(quantity) FROM order_lines"),
    Check(
        "embeddings",
        "rows per model_version",
        "SELECT model_version, count(*) FROM embeddings GROUP BY model_version",
    ),
)

#: Items whose ``tags_text`` does not hold exactly their tags (the text search would miss them).
_TAGS_TEXT_MISMATCHES: Final = """
SELECT count(*) FROM items i
WHERE (SELECT coalesce(array_agg(t.name ORDER BY t.name), '{}')
         FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id = i.id)
   <> (SELECT coalesce(array_agg(w ORDER BY w), '{}')
         FROM regexp_split_to_table(i.tags_text, ' ') AS w WHERE w <> '')
"""


@dataclass(frozen=True)
class Summary:
    """What a migration copied, for the operator."""

    source: Path
    target: str
    rows: dict[str, int]
    seconds: float

    def report(self) -> str:
        """A few lines: rows per table, the time taken and what is left to do by hand."""
        width = max(len(name) for name in self.rows)
        lines = [
            f"Copied the shop from {self.source} to {redact(self.target)}"
            f" in {self.seconds:.1f} s:",
            *(f"  {name:<{width}}  {count:>10,}" for name, count in self.rows.items()),
            "Verified: row counts, items' price x stock and search text, order totals, cart and"
            " order line quantities, embeddings per model version.",
            "Picture files are not in the database: servers on the new database must use"
            f" this data dir's blob folder ({self.source.parent / BLOBS}); copy it along with"
            " the data dir, its keyring.json included, and start them with the same master"
            " key (--key-file): the pictures, thumbnails and previews are sealed under it.",
        ]
        return "\n".join(lines)


def parse_source(spec: str) -> Path:
    """The SQLite file ``--from sqlite:PATH`` names; PATH may also be the data dir holding it.

    Raises:
        MigrationError: ``spec`` does not start with ``sqlite:``.
    """
    if not spec.startswith(SOURCE_PREFIX) or spec == SOURCE_PREFIX:
        raise MigrationError(
            f"--from must be {SOURCE_PREFIX}PATH (a pixmart data dir or its database file),"
            f" not {spec!r}"
        )
    path = Path(spec.removeprefix(SOURCE_PREFIX)).expanduser()
    return ServerConfig(data_dir=path).db_path if path.is_dir() else path


async def copy_shop(source: Path, target_url: str) -> Summary:
    """Copy the shop in the SQLite file ``source`` into the PostgreSQL database ``target_url``.

    Raises:
        MigrationError: The source or the target is unusable, the target already holds a
            shop, or the copy failed or disagrees with the source (then nothing was copied).
    """
    if not is_postgres_url(target_url):
        raise MigrationError(f"--to must be a postgresql:// URL, not {redact(target_url)!r}")
    started = time.monotonic()
    try:
        async with _open_source(source) as sqlite:
            conn = await _open_target(target_url)
            try:
                async with conn.transaction():
                    await _claim_empty(conn, target_url)
                    rows = await _load(sqlite, conn)
                    await _verify(sqlite, conn)
            finally:
                await conn.close()
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise MigrationError(_without_password(f"{redact(target_url)}: {exc}", target_url)) from exc
    return Summary(source, target_url, rows, time.monotonic() - started)


async def _load(source: aiosqlite.Connection, target: asyncpg.Connection[Any]) -> dict[str, int]:
    """Copy every table inside the caller's transaction; return the rows copied per table.

    Indexes that back no constraint are dropped first and built again over the copied rows:
    one build is much faster than growing an index row by row (three times, for the HNSW index
    of 10,000 embeddings). The ones behind keys stay, as foreign keys are checked on the way.
    """
    # The copied items are not queued for alert matching again (the alert_backlog triggers
    # skip while this is on): the source's backlog is copied as it stands.
    await target.execute("SET LOCAL pixmart.copying = 'on'")
    names = [table.name for table in TABLES]
    indexes = await target.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition"
        " FROM pg_index i WHERE i.indrelid = ANY($1::text[]::regclass[])"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        names,
    )
    for index in indexes:
        await target.execute(f"DROP INDEX {index['name']}")
    rows = {table.name: await _copy(source, target, table) for table in TABLES}
    # pgvector builds an HNSW index many times faster when the graph fits in this memory (about
    # 300 MB for 100,000 embeddings); for this transaction only, not the server's setting.
    await target.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
    for index in indexes:
        log.info("building index %s", index["name"])
        await target.execute(index["definition"])
    await _advance_sequences(source, target)
    # Statistics now, so the first queries of the new servers are planned for the real sizes.
    await target.execute(f"ANALYZE {', '.join(names)}")
    return rows


@asynccontextmanager
async def _open_source(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """The SQLite shop at ``path``, read-only, in one read transaction (one snapshot)."""
    if not path.is_file():
        raise MigrationError(f"{path}: no such file (give sqlite:DATA_DIR or its database file)")
    # mode=ro: SQLite refuses every write, so the source cannot change whatever happens here.
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise MigrationError(f"{path}: cannot open: {exc}") from exc
    try:
        try:
            await _check_source_version(conn, path)
            await conn.execute("BEGIN")
            yield conn
        except sqlite3.Error as exc:
            raise MigrationError(f"{path}: cannot read: {exc}") from exc
        finally:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
    finally:
        await conn.close()


async def _check_source_version(conn: aiosqlite.Connection, path: Path) -> None:
    """Refuse a source whose schema is not exactly this pixmart's: its tables would differ."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    newest = len(sqlite_migrations())
    if version < newest:
        raise MigrationError(
            f"{path} is at schema version {version}, this pixmart's is {newest}: start"
            " pixmart-server once on its data dir to migrate it, then run migrate-data again"
        )
    if version > newest:
        raise MigrationError(
            f"{path} is at schema version {version}, newer than this pixmart's {newest}:"
            " run migrate-data with the pixmart that wrote it"
        )


async def _open_target(url: str) -> asyncpg.Connection[Any]:
    """A connection to the target, migrated to the newest schema, that speaks ``halfvec``."""
    try:
        await PostgresDatabase(url).migrate()
    except SchemaTooNewError as exc:
        raise MigrationError(f"{redact(url)}: {exc}") from exc
    except ValueError as exc:  # asyncpg's word for a URL it cannot read (a bad port, say)
        raise MigrationError(f"{redact(url)} is not a usable URL: {exc}") from exc
    conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
    try:
        # The extension lives wherever the operator created it (``public`` unless told).
        schema = await conn.fetchval(
            "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE t.typname = 'halfvec'"
        )
        await conn.set_type_codec(
            "halfvec",
            schema=schema,
            encoder=_encode_halfvec,
            decoder=_decode_halfvec,
            format="binary",
        )
    except BaseException:
        await conn.close()
        raise
    return conn


async def _claim_empty(conn: asyncpg.Connection[Any], url: str) -> None:
    """Lock every table against writers until the copy ends, and refuse a target in use.

    EXCLUSIVE mode still lets servers read, but no one can add a row between this check and
    the commit (a server started on the target meanwhile waits).
    """
    names = [table.name for table in TABLES]
    await conn.execute(f"LOCK TABLE {', '.join(names)} IN EXCLUSIVE MODE")
    filled = [
        name for name in names if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name})")
    ]
    if filled:
        raise MigrationError(
            f"{redact(url)} already holds data ({', '.join(filled)}): migrate-data copies a"
            " shop only into an empty database"
        )


async def _copy(source: aiosqlite.Connection, target: asyncpg.Connection[Any], table: Table) -> int:
    """Stream one table from ``source`` into ``target`` with COPY; return the rows copied."""
    converters = table.converters()

    async def records() -> AsyncGenerator[tuple[Any, ...], None]:
        async with source.execute(table.source_query()) as cursor:
            while batch := await cursor.fetchmany(table.batch):
                for row in batch:
                    yield tuple(
                        value if convert is None else convert(value)
                        for convert, value in zip(converters, row, strict=True)
                    )

    # aclosing: a COPY that fails midway must not leave the generator (and its cursor) open.
    try:
        async with aclosing(records()) as rows:
            status = await target.copy_records_to_table(
                table.name, records=rows, columns=list(table.columns)
            )
    # TypeError/ValueError: asyncpg's words for a value of the wrong type (SQLite's columns
    # take anything).
    except (asyncpg.PostgresError, TypeError, ValueError) as exc:
        raise MigrationError(f"could not copy {table.name}, nothing was copied: {exc}") from exc
    copied = int(status.rsplit(" ", 1)[-1])
    log.info("copied %d rows of %s", copied, table.name)
    return copied


async def _advance_sequences(
    source: aiosqlite.Connection, target: asyncpg.Connection[Any]
) -> None:
    """Move each identity sequence past the ids copied, so new rows get new ids.

    SQLite's AUTOINCREMENT (items) remembers ids of rows since deleted; the sequence goes past
    those too, so an id an order line still names is never given to another item.
    """
    async with source.execute("SELECT name, seq FROM sqlite_sequence") as cursor:
        used = {str(name): int(seq) for name, seq in await cursor.fetchall()}
    for table in TABLES:
        if not table.identity:
            continue
        copied = await target.fetchval(f"SELECT coalesce(max(id), 0) FROM {table.name}")
        highest = max(int(copied), used.get(table.name, 0))
        if highest > 0:
            await target.execute(
                "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)", table.name, highest
            )


async def _verify(source: aiosqlite.Connection, target: asyncpg.Connection[Any]) -> None:
    """Compare every check between the engines, and the search text with the tags.

    Raises:
        VerificationError: Naming the first table that disagrees.
    """
    for check in CHECKS:
        async with source.execute(check.sql) as cursor:
            expected = _answer(await cursor.fetchall())
        found = _answer(await target.fetch(check.sql))
        if expected != found:
            raise VerificationError(
                f"verification failed, nothing was copied: {check.table}: {check.what} is"
                f" {_show(expected)} in SQLite but {_show(found)} in PostgreSQL"
            )
    mismatched = await target.fetchval(_TAGS_TEXT_MISMATCHES)
    if mismatched:
        raise VerificationError(
            f"verification failed, nothing was copied: items: {mismatched} items' tags_text"
            " differ from their item_tags"
        )


def _answer(rows: Iterable[Iterable[Any]]) -> list[tuple[Any, ...]]:
    """Rows of a check comparable across engines: sorted, PostgreSQL's numeric sums as ints."""
    return sorted(
        tuple(int(value) if isinstance(value, Decimal) else value for value in row)
        for row in rows
    )


def _show(answer: list[tuple[Any, ...]]) -> str:
    """A check's answer as the operator reads it: the bare value of a one-value answer."""
    if len(answer) == 1 and len(answer[0]) == 1:
        return str(answer[0][0])
    return str(answer)


def _without_password(text: str, url: str) -> str:
    """``text`` with the password of ``url`` masked, wherever a driver may have echoed it."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
