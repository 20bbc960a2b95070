"""Provides request dispatch: the route table, authorisation of every request and error mapping."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from backend.accounts.service import AccountService
from backend.connection import Connection
from backend.replay import ReplayCache
from protocol.errors import BadRequest, Internal, PixmartError
from protocol.messages.base import ErrorReply, Reply, Request

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Request)
Handler = Callable[[Connection, Any], Awaitable[Reply]]
AfterReply = Callable[[Connection, Reply], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """How one request type is handled."""

    handler: Handler
    #: Whether the request needs a valid session (checked again on every request).
    auth: bool
    #: Whether a retried request (same client session and id) is answered from the replay cache.
    replayable: bool
    #: Applied to the connection after a reply, fresh or replayed (e.g. binding a new session).
    after: AfterReply | None


class Dispatcher:
    """Maps request types to handlers and turns every outcome into a reply."""

    def __init__(self, accounts: AccountService, replay: ReplayCache | None = None) -> None:
        self._accounts = accounts
        self._replay = replay or ReplayCache()
        self._routes: dict[type[Request], Route] = {}

    def route(
        self,
        request_type: type[R],
        *,
        auth: bool = True,
        replayable: bool = True,
        after: AfterReply | None = None,
    ) -> Callable[
        [Callable[[Connection, R], Awaitable[Reply]]], Callable[[Connection, R], Awaitable[Reply]]
    ]:
        """Register the decorated coroutine as the handler of ``request_type``."""

        def register(
            handler: Callable[[Connection, R], Awaitable[Reply]],
        ) -> Callable[[Connection, R], Awaitable[Reply]]:
            if request_type in self._routes:
                raise ValueError(f"{request_type.__name__} already has a handler")
            self._routes[request_type] = Route(handler, auth, replayable, after)
            return handler

        return register

    @property
    def request_types(self) -> frozenset[type[Request]]:
        """Every request type with a handler."""
        return frozenset(self._routes)

    async def dispatch(self, connection: Connection, request: Request, frame: bytes) -> Reply:
        """Handle one request and return its reply: the result, or a typed error reply."""
        try:
            reply = await self._dispatch(connection, request, frame)
        except PixmartError as exc:
            return error_reply(request.id, exc)
        except Exception:
            log.exception("internal error handling %s on %r", type(request).__name__, connection)
            return error_reply(request.id, Internal("Something went wrong on the server"))
        return msgspec.structs.replace(reply, id=request.id)

    async def _dispatch(self, connection: Connection, request: Request, frame: bytes) -> Reply:
        route = self._routes.get(type(request))
        if route is None:
            raise BadRequest(f"{type(request).__name__} is not a request this server handles")
        if route.auth:
            principal = connection.require_user()
            # Sessions can be revoked or expire while the connection stays open.
            try:
                connection.principal = await self._accounts.authenticate(principal)
            except PixmartError:
                connection.principal = None
                raise

        async def compute() -> Reply:
            return await route.handler(connection, request)

        if route.replayable and connection.client_id is not None:
            fingerprint = hashlib.sha256(frame).digest()[:16]
            reply = await self._replay.run(connection.client_id, request.id, fingerprint, compute)
        else:
            reply = await compute()
        if route.after is not None:
            await route.after(connection, reply)
        return reply


def error_reply(request_id: int, exc: PixmartError) -> ErrorReply:
    """The wire form of a typed error."""
    return ErrorReply(
        id=request_id,
        code=exc.code,
        message=exc.message,
        retry_after=exc.retry_after,
        details=exc.details,
    )
