"""Shared fixtures: a real TLS server on port 0 with its own data dir, and client sessions."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from backend.config import ServerConfig, SessionPolicy
from backend.server import PixmartServer
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from protocol.client import Backoff, Session
from protocol.trust import TrustPolicy
from tests.support import TEST_LIMITS
from tests.support.pg import Template, postgres_server, run_sync, with_database
from tests.support.s3 import ObjectStore, fresh_prefix, object_store_server

#: Servers that module-scoped fixtures start (before any test's own config dir is set) make
#: their master key in the user config dir: a throwaway one, never the real one.
_CONFIG_DIR = tempfile.mkdtemp(prefix="pixmart-tests-config-")
os.environ["PIXMART_CONFIG_DIR"] = _CONFIG_DIR
#: Likewise the client's cache (pictures, the last gallery): never the real one.
os.environ["PIXMART_CACHE_DIR"] = os.path.join(_CONFIG_DIR, "cache")
atexit.register(shutil.rmtree, _CONFIG_DIR, True)

#: Fast reconnects in tests; the production default starts at half a second.
TEST_BACKOFF = Backoff(initial=0.02, factor=2.0, maximum=0.2)


@pytest.fixture(autouse=True)
def _isolated_client_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the real user config, cache and data dirs."""
    monkeypatch.setenv("PIXMART_CONFIG_DIR", str(tmp_path / "client-config"))
    monkeypatch.setenv("PIXMART_CACHE_DIR", str(tmp_path / "client-cache"))
    monkeypatch.setenv("PIXMART_DATA_DIR", str(tmp_path / "default-data"))
    os.environ.pop("PIXMART_SERVER", None)
    # ServerConfig reads it: a developer's own database must never be what a test writes to.
    monkeypatch.delenv("PIXMART_DATABASE", raising=False)
    monkeypatch.delenv("PIXMART_BLOBS", raising=False)


#: ``postgres`` runs every server of the suite on a PostgreSQL database of its own.
ENGINE_VARIABLE = "PIXMART_TEST_ENGINE"
#: ``s3`` keeps the pictures of every server of the suite in the object store (a prefix each).
BLOBS_VARIABLE = "PIXMART_TEST_BLOBS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Select the tests of the pass, the files marked ``long_running`` first.

    On the PostgreSQL pass, run only tests whose servers use the engine under test: a test
    that never builds a server from ``server_config`` would only repeat its SQLite run; one
    marked ``sqlite_only`` looks at the SQLite file itself.
    """
    if os.environ.get(BLOBS_VARIABLE, "local") == "s3":
        # On the object store pass, tests that look into the blobs folder have nothing to see.
        kept = [item for item in items if item.get_closest_marker("local_blobs") is None]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if os.environ.get(ENGINE_VARIABLE, "sqlite") == "postgres":
        selected, deselected = [], []
        for item in items:
            # server_config, not server_database: pytest's closure of a test that overrides
            # server_config (``def server_config(server_config)``) omits the parent's arguments.
            names = getattr(item, "fixturenames", ())
            uses_engine = "server_config" in names or "server_database" in names
            if uses_engine and item.get_closest_marker("sqlite_only") is None:
                selected.append(item)
            else:
                deselected.append(item)
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    # With `make test`'s workers taking a test file each (in this order: the Makefile turns
    # off xdist's reordering by test count), a long file started last would keep one worker
    # busy alone for its whole length; started first, the short files fill in beside it.
    items.sort(key=lambda item: item.get_closest_marker("long_running") is None)


@pytest.fixture
async def server_database(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """The ``--database`` of test servers: ``None`` (SQLite) unless the engine is PostgreSQL."""
    if os.environ.get(ENGINE_VARIABLE, "sqlite") != "postgres":
        yield None
        return
    template: Template = request.getfixturevalue("postgres_template")
    url = await template.copy()
    try:
        yield url
    finally:
        await template.drop(url)


@pytest.fixture
def server_blobs(request: pytest.FixtureRequest) -> str | None:
    """The ``--blobs`` of test servers: ``None`` (the data dir) unless the store is S3."""
    if os.environ.get(BLOBS_VARIABLE, "local") != "s3":
        return None
    return str(request.getfixturevalue("blobs_url"))


@pytest.fixture
def server_config(
    tmp_path: Path, server_database: str | None, server_blobs: str | None
) -> ServerConfig:
    """A config for a server on a free loopback port, without the image model."""
    return ServerConfig(
        database=server_database,
        blobs=server_blobs,
        data_dir=tmp_path / "server-data",
        port=0,
        enable_vision=False,
        limits=TEST_LIMITS,
        # Tests sign up many users from one loopback address; the sign-up limits have their
        # own tests (tests/fault/test_edge_accounts.py), which put the defaults back.
        sessions=SessionPolicy(max_accounts_per_address=10_000, max_accounts_total=10_000),
    )


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[PixmartServer]:
    """A running server with image search warmed up if on; stopped gracefully after the test."""
    instance = PixmartServer(server_config)
    await instance.start()
    await instance.vision_ready()
    try:
        yield instance
    finally:
        await instance.stop()


SessionFactory = Callable[..., Awaitable[Session]]


@pytest.fixture
async def make_session(server: PixmartServer) -> AsyncIterator[SessionFactory]:
    """Connect sessions to ``server`` that pin its fingerprint; all closed after the test."""
    sessions: list[Session] = []

    async def factory(**kwargs: object) -> Session:
        url = str(kwargs.pop("url", f"wss://127.0.0.1:{server.port}"))
        trust = kwargs.pop("trust", None) or TrustPolicy(fingerprint=server.fingerprint)
        kwargs.setdefault("backoff", TEST_BACKOFF)
        session = Session(url, trust, **kwargs)  # type: ignore[arg-type]
        await session.connect()
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.close()


async def logged_in(
    make_session: SessionFactory, username: str, password: str = "password123"
) -> Session:
    """A session logged in as a fresh account ``username``."""
    session = await make_session()
    await session.create_account(username, password)
    await session.login(username, password)
    return session


def with_limits(config: ServerConfig, **changes: object) -> ServerConfig:
    """``config`` with some limits changed."""
    return replace(config, limits=replace(config.limits, **changes))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[Template]:
    """A migrated PostgreSQL template database, on a server started if none runs."""
    with postgres_server() as url:
        template = Template(url)
        run_sync(template.create())
        try:
            yield template
        finally:
            run_sync(template.drop(with_database(url, template.name)))


@pytest.fixture
async def pg_url(postgres_template: Template) -> AsyncIterator[str]:
    """The URL of a migrated, empty PostgreSQL database of this test's own."""
    url = await postgres_template.copy()
    try:
        yield url
    finally:
        await postgres_template.drop(url)


@pytest.fixture(params=["sqlite", "postgres"])
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each storage engine in turn."""
    return str(request.param)


@pytest.fixture
async def engine(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StorageEngine]:
    """An open, migrated, empty database of each engine in turn (for the contract suites)."""
    db: StorageEngine
    url = None
    if engine_name == "sqlite":
        db = Database(tmp_path / "contract.sqlite3")
    else:
        # Looked up only here, so SQLite-only runs never start PostgreSQL.
        template: Template = request.getfixturevalue("postgres_template")
        url = await template.copy()
        db = PostgresDatabase(url, min_size=1, max_size=8)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
        if url is not None:
            await template.drop(url)


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """An S3-compatible object store (SeaweedFS), started for the session if none runs."""
    with object_store_server() as store:
        yield store


@pytest.fixture
def blobs_url(object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ``--blobs`` URL of a prefix of this test's own; its objects are removed afterwards."""
    for key, value in object_store.credentials.items():
        monkeypatch.setenv(key, value)
    url = object_store.prefixed(fresh_prefix())
    try:
        yield url
    finally:
        object_store.clear(url)
