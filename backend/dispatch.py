"""Provides request dispatch: the route table, authorisation of every request and error mapping.

Every request, dispatched or refused by the transport before dispatch, is counted in the server's
metrics and logged in one line on the ``pixmart.requests`` logger (see :mod:`backend.logs`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from backend.auth import Authenticator
from backend.connection import Connection
from backend.logs import REQUEST_LOGGER
from backend.metrics import OK, ServerMetrics
from backend.replay import Replay, ReplayCache
from protocol.errors import BadRequest, ErrorCode, Internal, PixmartError
from protocol.messages.base import ErrorReply, Reply, Request

log = logging.getLogger(__name__)
request_log = logging.getLogger(REQUEST_LOGGER)

#: The outcome of a request whose task was cancelled (its connection dropped, or shutdown).
CANCELLED = "cancelled"

R = TypeVar("R", bound=Request)
Handler = Callable[[Connection, Any], Awaitable[Reply]]
AfterReply = Callable[[Connection, Reply], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """How one request type is handled."""

    handler: Handler
    #: Whether the request needs a valid session (checked again on every request).
    auth: bool
    #: Whether a retried request (same client session, user and id) is answered from the replay
    #: cache.
    replayable: bool
    #: Whether the request or its reply carries a credential (a password, a session token): its
    #: replay is kept in this process only, never in storage shared with other instances.
    private: bool
    #: Applied to the connection after a reply, fresh or replayed (e.g. binding a new session).
    after: AfterReply | None


class Dispatcher:
    """Maps request types to handlers and turns every outcome into a reply."""

    def __init__(
        self,
        authenticator: Authenticator,
        replay: Replay | None = None,
        *,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._replay: Replay = replay or ReplayCache()
        self._routes: dict[type[Request], Route] = {}
        #: Where requests are counted; the transport reaches it here to count connections.
        self.metrics = metrics or ServerMetrics()

    def route(
        self,
        request_type: type[R],
        *,
        auth: bool = True,
        replayable: bool = True,
        private: bool = False,
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
            self._routes[request_type] = Route(handler, auth, replayable, private, after)
            return handler

        return register

    @property
    def request_types(self) -> frozenset[type[Request]]:
        """Every request type with a handler."""
        return frozenset(self._routes)

    async def dispatch(self, connection: Connection, request: Request, frame: bytes) -> Reply:
        """Handle one request and return its reply: the result, or a typed error reply."""
        started = time.perf_counter()
        user_before = connection.user_id
        outcome = CANCELLED
        try:
            try:
                reply = await self._dispatch(connection, request, frame)
            except PixmartError as exc:
                outcome = exc.code.value
                return error_reply(request.id, exc)
            except Exception:
                log.exception(
                    "internal error handling %s on %r", type(request).__name__, connection
                )
                outcome = ErrorCode.INTERNAL.value
                return error_reply(request.id, Internal("Something went wrong on the server"))
            outcome = OK
            return msgspec.structs.replace(reply, id=request.id)
        finally:
            seconds = time.perf_counter() - started
            # Logout and a revoked session end with no user; the line names who it was.
            user_id = connection.user_id if connection.user_id is not None else user_before
            self._account(connection, request.id, type(request).__name__, outcome, user_id, seconds)

    def refused(
        self, connection: Connection, request_id: int, request_type: str, exc: PixmartError
    ) -> None:
        """Count and log a request the transport answered with ``exc`` without dispatching it.

        Args:
            connection: Where it came from.
            request_id: Its id as far as it could be read (0 if not at all).
            request_type: Its type, or :data:`~backend.metrics.UNKNOWN_TYPE` if undecodable.
            exc: The error it was answered with (rate limited, malformed, ...).
        """
        self._account(
            connection, request_id, request_type, exc.code.value, connection.user_id, None
        )

    def _account(
        self,
        connection: Connection,
        request_id: int,
        request_type: str,
        outcome: str,
        user_id: int | None,
        seconds: float | None,
    ) -> None:
        """Record one request in the metrics and the request log (never its payload)."""
        self.metrics.observe_request(request_type, outcome, seconds)
        # Checked first so a server logging at WARNING builds nothing per request.
        if not request_log.isEnabledFor(logging.INFO):
            return
        duration_ms = round(seconds * 1000, 3) if seconds is not None else 0.0
        request_log.info(
            "type=%s outcome=%s duration_ms=%.3f request_id=%d user_id=%s conn_id=%d client=%s",
            request_type,
            outcome,
            duration_ms,
            request_id,
            user_id,
            connection.id,
            connection.address,
            extra={
                "type": request_type,
                "outcome": outcome,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "user_id": user_id,
                "conn_id": connection.id,
                "client": connection.address,
            },
        )

    async def _dispatch(self, connection: Connection, request: Request, frame: bytes) -> Reply:
        route = self._routes.get(type(request))
        if route is None:
            raise BadRequest(f"{type(request).__name__} is not a request this server handles")
        if route.auth:
            principal = connection.require_user()
            # Sessions can be revoked or expire while the connection stays open.
            try:
                connection.principal = await self._authenticator.authenticate(principal)
            except PixmartError:
                connection.principal = None
                raise

        async def compute() -> Reply:
            return await route.handler(connection, request)

        if route.replayable and connection.client_id is not None:
            fingerprint = hashlib.sha256(frame).digest()[:16]
            # The user is part of the key: a client id is whatever the hello claimed, so another
            # user presenting it must not be answered with this user's replies.
            reply = await self._replay.run(
                connection.client_id,
                connection.user_id,
                request.id,
                fingerprint,
                compute,
                private=route.private,
            )
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
