"""Fixtures shared by the integration tests (server and sessions: tests/conftest.py)."""

from __future__ import annotations

import pytest

from backend.server import PixmartServer
from tests.support.cli import Cli, cli_as


@pytest.fixture
async def cli(
    server: PixmartServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The scripting CLI logged in as a new account ``bob``."""
    return await cli_as("bob", server, capsys, monkeypatch)
