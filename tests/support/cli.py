"""Provides :class:`Cli` and :func:`cli_as`: the scripting CLI run against a test server.

The CLI integration tests (commerce, sales summary, favourites and inbox, alerts) all start
the same way: a new account made and logged in through ``pixmart`` itself, so its session is
the CLI's own saved one.
"""

from __future__ import annotations

import asyncio

import pytest

from backend.server import PixmartServer
from tests.support.commerce import PASSWORD
from tui.cli import main


class Cli:
    """Runs ``pixmart`` in a thread (it runs its own event loop) against the test server."""

    def __init__(self, server: PixmartServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.server = server
        self.capsys = capsys
        self.url = f"wss://127.0.0.1:{server.port}"

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        """Run ``pixmart ARGS``; its exit code, standard output and standard error."""
        self.capsys.readouterr()
        argv = ["--server", self.url, "--trust", self.server.fingerprint, *args]
        code = await asyncio.to_thread(main, argv)
        out, err = self.capsys.readouterr()
        return code, out, err


async def cli_as(
    name: str,
    server: PixmartServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """A CLI logged in as a new account ``name`` (password :data:`PASSWORD`, from the env)."""
    monkeypatch.setenv("PIXMART_PASSWORD", PASSWORD)
    run = Cli(server, capsys)
    assert (await run("account", "create", name))[0] == 0
    assert (await run("login", name))[0] == 0
    return run
