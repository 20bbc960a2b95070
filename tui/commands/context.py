"""Provides what every scripting subcommand shares: options, the session, output helpers."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from protocol.client import Session
from protocol.trust import TrustPolicy
from tui.store import ClientStore

DEFAULT_SERVER = "wss://127.0.0.1:8765"

T = TypeVar("T")

#: A subcommand: gets the context and its parsed arguments, returns the exit status.
Command = Callable[["CommandContext", argparse.Namespace], Awaitable[int]]


class CommandFailed(Exception):
    """A subcommand failed for a reason to print in words (exit status 1)."""


@dataclass
class CommandContext:
    """The resolved global options of one ``pixmart`` run."""

    server: str
    trust: TrustPolicy
    store: ClientStore

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CommandContext:
        """Resolve ``--server`` / ``PIXMART_SERVER`` / last used, and the trust policy."""
        store = ClientStore()
        server = args.server or os.environ.get("PIXMART_SERVER") or store.last_server
        server = server or DEFAULT_SERVER
        trust = TrustPolicy(
            ca_file=Path(args.ca_file) if args.ca_file else None,
            fingerprint=args.trust or os.environ.get("PIXMART_TRUST"),
            known=store.known_servers,
        )
        return cls(server=server, trust=trust, store=store)

    def session(self, *, with_token: bool = True) -> Session:
        """A session to the server, resuming the saved token; tokens are saved as they change."""
        # PIXMART_TOKEN lets a launcher hand over a session (``pixmart-server import`` does).
        token = os.environ.get("PIXMART_TOKEN") or self.store.token(self.server)
        session = Session(
            self.server,
            self.trust,
            token=token if with_token else None,
            client_name="pixmart-cli",
        )
        session.on_token(lambda token: self.store.save_token(self.server, token))
        return session

    @asynccontextmanager
    async def logged_in(self) -> AsyncIterator[Session]:
        """A connected, logged-in session for the block; closed when it ends."""
        session = await self.connected()
        try:
            yield session
        finally:
            await session.close()

    async def connected(self) -> Session:
        """A connected session that must be logged in."""
        session = self.session()
        await session.connect()
        self.store.remember(server=self.server)
        if session.user is None:
            await session.close()
            raise CommandFailed("Not logged in: run 'pixmart login USER' first")
        return session


def read_password(prompt: str = "Password: ", *, confirm: bool = False) -> str:
    """The password from ``PIXMART_PASSWORD`` or a prompt on the terminal."""
    env = os.environ.get("PIXMART_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise CommandFailed("No password: set PIXMART_PASSWORD or run in a terminal")
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat password: ") != password:
        raise CommandFailed("The passwords do not match")
    return password


def read_file(path: Path | None) -> bytes | None:
    """The bytes of a file the person named (``None`` if none was).

    Raises:
        CommandFailed: the file cannot be read; says why, without a traceback.
    """
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"Cannot read {path}: {exc.strerror}") from None


def json_option() -> argparse.ArgumentParser:
    """A parent parser that gives ``--json`` to a command and to each of its actions.

    Read the flag with :func:`wants_json`.
    """
    parser = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: "--json" may come before or after the action: the parser not given it then
    # sets no default that would overwrite the other's answer.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    return parser


def wants_json(args: argparse.Namespace) -> bool:
    """Whether ``--json`` was given, before or after the action (see :func:`json_option`)."""
    return bool(getattr(args, "json", False))


def print_json(value: Any) -> None:
    """Print one JSON object on one line (msgspec Structs included)."""
    sys.stdout.write(json.dumps(msgspec.to_builtins(value), ensure_ascii=False, sort_keys=True))
    sys.stdout.write("\n")


async def print_rows(
    rows: AsyncIterable[T],
    *,
    as_json: bool,
    line: Callable[[T], str],
    empty: str,
    as_value: Callable[[T], object] = lambda row: row,
) -> None:
    """Print a listing as its rows arrive, one per line: ``line(row)``, or with ``as_json`` the
    JSON object of ``as_value(row)``. ``empty`` is printed when there is no row, as text only
    (a script reading JSON gets no line at all).
    """
    count = 0
    async for row in rows:
        if as_json:
            print_json(as_value(row))
        else:
            print(line(row))
        count += 1
    if not count and not as_json:
        print(empty)
