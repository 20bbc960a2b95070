"""Provides the domains the server runs; each registers its handlers and background work.

A domain is built from the shared :class:`~backend.services.Services` and, through its
constructor, the services of the domains it uses; it is started before the server accepts
connections (migrations have run by then), and stopped after the last connection closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from backend.dispatch import Dispatcher
from backend.services import Services

if TYPE_CHECKING:
    from backend.alerts.domain import AlertsDomain
    from backend.catalogue.domain import CatalogueDomain
    from backend.commerce.domain import CommerceDomain
    from backend.favourites.domain import FavouritesDomain
    from backend.inbox.domain import InboxDomain
    from backend.vision.domain import VisionDomain


class Domain(Protocol):
    """One domain of the backend (catalogue, vision, commerce, ...)."""

    async def start(self) -> None:
        """Open resources, run start-up sweeps, start background tasks."""

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the domain's request handlers."""

    async def stop(self) -> None:
        """Stop background tasks and release resources."""


@dataclass(frozen=True)
class Domains:
    """The domains of one server, each by its type, and all of them in start order."""

    catalogue: CatalogueDomain
    #: Always built, so its requests are answered; its ``service`` is ``None`` (and the
    #: requests answer ``unavailable``) without the image model.
    vision: VisionDomain
    commerce: CommerceDomain
    #: Users' notices; other domains deliver to it through its ``service``.
    inbox: InboxDomain
    #: Users' kept items; tells their keepers of price drops and restocks through the inbox.
    favourites: FavouritesDomain
    #: Saved searches that alert; matches the catalogue's new and edited items.
    alerts: AlertsDomain

    @property
    def all(self) -> tuple[Domain, ...]:
        """Every domain in start order; they are stopped in reverse."""
        # Vision hooks into the catalogue, so it starts after it; the inbox, which others
        # deliver to, starts first and stops last.
        # Alerts hook into the catalogue after vision, whose hook embeds a new picture first.
        return (
            self.inbox,
            self.catalogue,
            self.vision,
            self.alerts,
            self.commerce,
            self.favourites,
        )


def build_domains(services: Services) -> Domains:
    """Build the domains this server runs, each handed the services of those it uses."""
    # Imported here rather than at module level so light commands (``pixmart-server
    # fingerprint``, ``admin``) do not load every domain.
    from backend.alerts.domain import AlertsDomain
    from backend.catalogue.domain import CatalogueDomain
    from backend.commerce.domain import CommerceDomain
    from backend.favourites.domain import FavouritesDomain
    from backend.inbox.domain import InboxDomain
    from backend.vision.domain import VisionDomain

    inbox = InboxDomain(services)
    catalogue = CatalogueDomain(services)
    vision = VisionDomain(services, catalogue=catalogue.service)
    return Domains(
        inbox=inbox,
        catalogue=catalogue,
        vision=vision,
        commerce=CommerceDomain(services),
        favourites=FavouritesDomain(services, catalogue=catalogue.service, inbox=inbox.service),
        alerts=AlertsDomain(
            services, catalogue=catalogue.service, vision=vision, inbox=inbox.service
        ),
    )
