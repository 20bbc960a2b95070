"""Provides loopback ports for the development services: a free one, or one kept in a file."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kept_port(base: Path) -> int:
    """The port kept in ``base/port``, chosen free the first time (so restarts keep it)."""
    path = base / "port"
    if not path.exists():
        base.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{free_port()}\n")
    return int(path.read_text())
