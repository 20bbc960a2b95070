"""Provides :class:`ThreadedServer`: a real server on port 0 in its own thread and event loop.

Snapshot tests are synchronous (``snap_compare`` runs the app in its own loop), so the server they
talk to cannot share the test's loop the way the Pilot tests' ``server`` fixture does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from backend.config import ServerConfig
from backend.server import PixmartServer

T = TypeVar("T")


class ThreadedServer:
    """Starts :class:`PixmartServer` in a daemon thread; :meth:`run` executes coroutines there."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="server")
        self.server: PixmartServer | None = None

    def start(self, timeout: float = 30.0) -> ThreadedServer:
        """Start the loop and the server; returns ``self``.

        Args:
            timeout: seconds to wait for the server (more when it builds the image model).
        """
        self._thread.start()
        self.server = PixmartServer(self.config)
        self.run(self.server.start(), timeout)
        self.run(self.server.vision_ready(), timeout)
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the server's loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.server is not None
        return self.server.port

    @property
    def fingerprint(self) -> str:
        """The certificate fingerprint."""
        assert self.server is not None
        return self.server.fingerprint

    @property
    def url(self) -> str:
        """The ``wss://`` address."""
        return f"wss://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server, then the loop and the thread."""
        if self.server is not None:
            self.run(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


__all__ = ["ThreadedServer"]
