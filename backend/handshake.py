"""Provides the hello exchange: protocol version check and the server's capabilities."""

from __future__ import annotations

from collections.abc import Callable

from backend.connection import Connection
from backend.dispatch import Dispatcher
from protocol.errors import BadRequest
from protocol.messages.base import PROTOCOL_VERSION, Capabilities, Hello, Reply, Welcome


def register(dispatcher: Dispatcher, capabilities: Callable[[], Capabilities]) -> None:
    """Register the :class:`Hello` handler; ``capabilities`` is asked on every hello."""

    @dispatcher.route(Hello, auth=False, replayable=False)
    async def hello(connection: Connection, request: Hello) -> Reply:
        if request.version != PROTOCOL_VERSION:
            raise BadRequest(
                f"Protocol version {request.version} is not supported; this server speaks "
                f"version {PROTOCOL_VERSION}. Update the client.",
                details={"server_version": PROTOCOL_VERSION},
            )
        connection.client_id = request.client_id
        return Welcome(id=request.id, version=PROTOCOL_VERSION, capabilities=capabilities())
