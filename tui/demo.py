"""Provides ``pixmart demo``: a local server seeded with the demo shop, and the TUI logged in.

The server runs as a subprocess (the TUI never imports the backend) on a free loopback port with
its own data dir. On first use the demo catalogue in ``data/demo/`` is uploaded through the
protocol, as its sellers, and a ``demo`` shopper account is made; later runs reuse all of it.
The launcher started the server, so it trusts the fingerprint the server printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from pixmart_data import data_file

from protocol.catalogue_client import upload_file
from protocol.client import Session
from protocol.errors import Conflict
from protocol.messages.catalogue import ItemMetadata
from protocol.trust import TrustPolicy
from tui.store import ClientStore

DEMO_USER = "demo"
CATALOGUE_DIR = data_file("demo")
#: Seconds the server may take to start listening (the image model warms up after that).
START_TIMEOUT = 60.0
#: How the server words a fatal start-up error (one line: the cause and the fix).
_FATAL = re.compile(r"^pixmart-server: error: .*$", re.MULTILINE)
_LISTENING = re.compile(r"listening on (wss://\S+)")
_FINGERPRINT = re.compile(r"fingerprint: ([0-9A-F:]{95})")


def demo_dir() -> Path:
    """Where the demo keeps its server data and client state (``PIXMART_DEMO_DIR`` overrides)."""
    env = os.environ.get("PIXMART_DEMO_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("pixmart", appauthor=False)) / "demo"


@dataclass(frozen=True)
class RunningServer:
    """A server subprocess and what it printed about itself."""

    process: subprocess.Popen[str]
    url: str
    fingerprint: str


def server_command() -> list[str]:
    """The ``pixmart-server`` next to this interpreter (or the module, in a source tree)."""
    script = Path(sys.executable).with_name("pixmart-server")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "backend.cli"]


@contextmanager
def local_server(data_dir: Path, *, extra: tuple[str, ...] = ()) -> Iterator[RunningServer]:
    """Start a server on a free loopback port; stop it (SIGTERM, then SIGKILL) on exit."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = data_dir / "server.log"
    # 0600 like everything in a data dir: the server's log names users' ids and addresses.
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # a log an older demo made readable by everyone
    log = os.fdopen(fd, "a", encoding="utf-8")
    start = log.tell()
    process = subprocess.Popen(
        [*server_command(), "--data-dir", str(data_dir), "serve", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        try:
            url, fingerprint = _read_banner(process)
        except RuntimeError as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)  # its last words reach the log before it exits
            raise RuntimeError(_fatal_line(log_path, start) or str(exc)) from None
        yield RunningServer(process, url, fingerprint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _fatal_line(log_path: Path, offset: int) -> str | None:
    """The server's one-line reason for not starting, if it wrote one after ``offset``."""
    with open(log_path, encoding="utf-8", errors="replace") as stream:
        stream.seek(offset)
        found = _FATAL.findall(stream.read())
    return found[-1] if found else None


def _read_banner(process: subprocess.Popen[str]) -> tuple[str, str]:
    assert process.stdout is not None
    url = fingerprint = None
    deadline = time.monotonic() + START_TIMEOUT
    while (url is None or fingerprint is None) and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the demo server stopped while starting; see its server.log")
        if match := _LISTENING.search(line):
            url = match.group(1)
        if match := _FINGERPRINT.search(line):
            fingerprint = match.group(1)
    if url is None or fingerprint is None:
        raise RuntimeError("the demo server did not start in time; see its server.log")
    return url, fingerprint


class DemoAccounts:
    """The demo's accounts and passwords (random per machine), in a 0600 file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            self._data = {}

    def password(self, username: str) -> str:
        """The password of ``username``, made up the first time it is asked for."""
        passwords = self._data.setdefault("passwords", {})
        if username not in passwords:
            passwords[username] = secrets.token_urlsafe(18)
            self._save()
        return str(passwords[username])

    @property
    def seeded(self) -> bool:
        """Whether the whole catalogue was uploaded once."""
        return bool(self._data.get("seeded"))

    def mark_seeded(self) -> None:
        """Remember that seeding finished."""
        self._data["seeded"] = True
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._data, handle, indent=2)
        os.replace(tmp, self.path)


async def _account(url: str, trust: TrustPolicy, username: str, password: str) -> Session:
    """A session logged in as ``username``, creating the account the first time."""
    session = Session(url, trust, client_name="pixmart-demo")
    await session.connect()
    try:
        await session.create_account(username, password)
    except Conflict:
        pass  # made by an earlier, interrupted seeding
    await session.login(username, password)
    return session


async def _upload_items(
    session: Session, items: list[dict[str, Any]], catalogue_dir: Path, in_flight: int = 4
) -> None:
    """Upload ``items`` as the session's user, a few at a time."""
    semaphore = asyncio.Semaphore(in_flight)

    async def upload(item: dict[str, Any]) -> None:
        metadata = ItemMetadata(
            title=item["title"],
            description=item["description"],
            price_cents=item["price_cents"],
            stock=item["stock"],
            tags=item["tags"],
            public=item["public"],
        )
        async with semaphore:
            await upload_file(session, catalogue_dir / item["file"], metadata)

    await asyncio.gather(*(upload(item) for item in items))


async def seed_catalogue(
    url: str, trust: TrustPolicy, accounts: DemoAccounts, catalogue_dir: Path = CATALOGUE_DIR
) -> int:
    """Upload the demo catalogue as its sellers; returns how many items were listed.

    Idempotent: accounts that exist are logged into, pictures already listed come back as
    duplicates, so an interrupted seeding simply runs again.
    """
    catalogue = json.loads((catalogue_dir / "catalogue.json").read_text("utf-8"))
    items: list[dict[str, Any]] = catalogue["items"]
    sellers = {seller["username"] for seller in catalogue["sellers"]}
    listed = 0
    for seller in sorted(sellers):
        session = await _account(url, trust, seller, accounts.password(seller))
        try:
            mine = [item for item in items if item["seller"] == seller]
            await _upload_items(session, mine, catalogue_dir)
            listed += len(mine)
            print(f"  {seller}: {len(mine)} items", flush=True)
        finally:
            await session.close()
    shopper = await _account(url, trust, DEMO_USER, accounts.password(DEMO_USER))
    await shopper.close()
    accounts.mark_seeded()
    return listed


async def log_in_demo_user(
    url: str, trust: TrustPolicy, accounts: DemoAccounts, store: ClientStore
) -> None:
    """Log the shopper in and leave the token where the TUI looks for it."""
    session = Session(url, trust, client_name="pixmart-demo")
    session.on_token(lambda token: store.save_token(url, token))
    await session.connect()
    try:
        await session.login(DEMO_USER, accounts.password(DEMO_USER))
    finally:
        await session.close()
    store.remember(server=url, username=DEMO_USER)


def run_demo(args: object = None) -> int:
    """Start the demo server, seed it once, and run the TUI logged in; returns the exit status."""
    import textual_image.widget  # noqa: F401  (terminal detection before Textual starts)

    from tui.launch import build_app

    root = demo_dir()
    store = ClientStore(root / "client")
    accounts = DemoAccounts(root / "client" / "demo-accounts.json")
    print(f"pixmart demo: starting a local server (data in {root})", flush=True)
    try:
        with local_server(root / "server") as server:
            trust = TrustPolicy(fingerprint=server.fingerprint)
            if not accounts.seeded:
                print("pixmart demo: stocking the shop (first run only)…", flush=True)
                count = asyncio.run(seed_catalogue(server.url, trust, accounts))
                print(f"pixmart demo: {count} items listed", flush=True)
            asyncio.run(log_in_demo_user(server.url, trust, accounts, store))
            app = build_app(store=store, trust=trust, server_url=server.url)
            app.run()
            return app.return_code or 0
    except (RuntimeError, OSError) as exc:
        print(f"pixmart demo: {exc}", file=sys.stderr)
        return 1
