"""Provides the event bus: domain facts shared between the server instances of one shop.

A *fact* is what happened in a domain (an item's price changed, a user's sessions ended), never
who should hear of it: each instance that receives a fact applies the visibility rules to its
own connections, exactly as the instance where it happened did. The instance where a fact
happens delivers it to its own connections itself, at once; the bus carries it to the others.

:class:`EventBus` is the bus of a single server (SQLite): there is nobody else to tell.
:class:`backend.pg_eventbus.PostgresEventBus` carries facts over PostgreSQL LISTEN/NOTIFY.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

log = logging.getLogger(__name__)


class Fact(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A domain fact every instance delivers to its own connections (subclasses are tagged)."""


F = TypeVar("F", bound=Fact)
#: Delivers a fact received from another instance to this instance's connections.
FactHandler = Callable[[F], None]


class EventBus:
    """Shares facts with the other server instances; on its own, a single server's no-op bus.

    Domains register a handler per kind of fact with :meth:`on`; facts from other instances
    reach that handler through :meth:`receive`. Subclasses carry them (:meth:`publish`).
    """

    def __init__(self) -> None:
        self._handlers: dict[type[Fact], Callable[[Any], None]] = {}

    def on(self, kind: type[F], handler: FactHandler[F]) -> None:
        """Hand facts of ``kind`` from other instances to ``handler``."""
        self._handlers[kind] = handler

    @property
    def kinds(self) -> tuple[type[Fact], ...]:
        """The kinds of fact with a handler, in registration order."""
        return tuple(self._handlers)

    def publish(self, fact: Fact) -> None:
        """Tell the other instances of ``fact``; never blocks (a single server: nothing)."""

    def receive(self, fact: Fact) -> None:
        """Deliver a fact from another instance to this instance's connections."""
        handler = self._handlers.get(type(fact))
        if handler is None:
            log.warning("no handler for %s from another instance", type(fact).__name__)
            return
        try:
            handler(fact)
        except Exception:  # one broken delivery must not stop the facts after it
            log.exception("delivering %s from another instance failed", type(fact).__name__)

    async def start(self) -> None:
        """Start carrying facts (a single server: nothing to start)."""

    async def flush(self) -> None:
        """Wait until the facts published so far have been sent (a single server: at once)."""

    async def close(self) -> None:
        """Stop carrying facts."""
