"""Provides the list of domains the server runs; each registers its handlers and background work.

A domain is built from the shared :class:`~backend.services.Services`, started before the server
accepts connections (migrations have run by then), and stopped after the last connection closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from backend.dispatch import Dispatcher
from backend.services import Services


class Domain(Protocol):
    """One domain of the backend (catalogue, vision, commerce, ...)."""

    async def start(self) -> None:
        """Open resources, run start-up sweeps, start background tasks."""

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the domain's request handlers."""

    async def stop(self) -> None:
        """Stop background tasks and release resources."""


#: Factories of the domains, in start order (later domains may use earlier ones' services).
DomainFactory = Callable[[Services], Domain]


def domain_factories() -> list[DomainFactory]:
    """The domains this server runs, in start order."""
    # Imported here rather than at module level so light commands (``pixmart-server
    # fingerprint``, ``admin``) do not load every domain.
    from backend.catalogue.domain import CatalogueDomain
    from backend.commerce.domain import CommerceDomain
    from backend.vision.domain import VisionDomain

    # Vision hooks into the catalogue, so it starts after it.
    return [CatalogueDomain, VisionDomain, CommerceDomain]
