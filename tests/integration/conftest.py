"""Fixtures shared by the integration tests (server and sessions: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.server import PixmartServer
from tests.support.cli import Cli, cli_as
from tests.support.two_instances import Cluster, two_instances


@pytest.fixture
async def cli(
    server: PixmartServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The scripting CLI logged in as a new account ``bob``."""
    return await cli_as("bob", server, capsys, monkeypatch)


@pytest.fixture
async def cluster(pg_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    """Instances A and B on one fresh PostgreSQL database, each with a data dir of its own."""
    async with two_instances(pg_url, tmp_path) as pair:
        yield pair
