"""A loopback TCP proxy that a test can break on purpose.

It sits between a client and the server and forwards bytes both ways (TLS passes through
untouched). A test can make one direction silently swallow bytes, as a one-way network failure
would, wait until something was swallowed, and cut every connection abruptly. Connections made
after a cut are forwarded normally again, so a client can reconnect through the same proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass, field


class Direction(enum.Enum):
    """Which way bytes flow."""

    UPSTREAM = "client to server"
    DOWNSTREAM = "server to client"


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        self.client.transport.abort()
        self.upstream.transport.abort()


class TcpProxy:
    """Forwards loopback TCP connections from :attr:`port` to ``upstream_port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        #: Connections accepted so far.
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._dropping: set[Direction] = set()
        self._dropped = dict.fromkeys(Direction, 0)
        self._dropped_changed = asyncio.Event()

    @property
    def port(self) -> int:
        """The port clients connect to."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_links(self) -> int:
        """Client connections currently forwarded."""
        return len(self._links)

    async def start(self) -> int:
        """Start listening on a free loopback port; return it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.port

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def drop(self, direction: Direction) -> None:
        """From now on, swallow bytes flowing in ``direction`` on every open connection."""
        self._dropping.add(direction)

    def dropped(self, direction: Direction) -> int:
        """Bytes swallowed in ``direction`` so far."""
        return self._dropped[direction]

    async def wait_dropped(self, direction: Direction, *, timeout: float = 5.0) -> int:
        """Wait until at least one byte flowing in ``direction`` was swallowed; return the total."""
        async with asyncio.timeout(timeout):
            while self._dropped[direction] == 0:
                changed = self._dropped_changed
                await changed.wait()
        return self._dropped[direction]

    def cut(self) -> None:
        """Abort every open connection (no FIN, no close frame) and stop swallowing bytes."""
        self._dropping.clear()
        for link in list(self._links):
            link.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.pumps = [
            asyncio.create_task(self._pump(reader, up_writer, Direction.UPSTREAM)),
            asyncio.create_task(self._pump(up_reader, writer, Direction.DOWNSTREAM)),
        ]
        try:
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # One side ended: end the other too, like a connection through a NAT box would.
            link.abort()
            for pump in link.pumps:
                pump.cancel()
            for pump in link.pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            self._links.discard(link)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if direction in self._dropping:
                    self._dropped[direction] += len(data)
                    self._dropped_changed.set()
                    self._dropped_changed = asyncio.Event()
                    continue
                writer.write(data)
                await writer.drain()


__all__ = ["Direction", "TcpProxy"]
