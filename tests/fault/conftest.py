"""Fixtures for fault and abuse tests: raw WebSocket peers that bypass the project's client."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from backend.server import PixmartServer


def insecure_tls() -> ssl.SSLContext:
    """A TLS 1.3 context that skips verification: these peers attack, they need no trust."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


RawPeer = Callable[..., Any]


def raw_peer(server: PixmartServer) -> Callable[..., Any]:
    """A factory of raw websockets connections to ``server``."""

    @asynccontextmanager
    async def open_peer(**kwargs: Any) -> AsyncIterator[ClientConnection]:
        kwargs.setdefault("max_size", None)
        async with connect(
            f"wss://127.0.0.1:{server.port}",
            ssl=insecure_tls(),
            compression=None,
            proxy=None,
            **kwargs,
        ) as ws:
            yield ws

    return open_peer
