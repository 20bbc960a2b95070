"""Provides the container of shared services that every domain is built from."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.accounts.service import AccountService
from backend.atrest.keys import KeySet
from backend.config import ServerConfig
from backend.eventbus import EventBus
from backend.events import EventHub
from backend.metrics import ServerMetrics
from backend.storage.engine import StorageEngine


@dataclass
class Services:
    """Everything a request handler may use; built once per server process.

    Domain services (catalogue, vision, commerce) are not here: each domain is handed those of
    the others it uses through its constructor (see :func:`backend.domains.build_domains`).
    """

    config: ServerConfig
    db: StorageEngine
    accounts: AccountService
    events: EventHub
    #: The server's Prometheus metrics; domains record what they do here.
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    #: Carries domain facts to the other server instances (a no-op bus for a single server).
    bus: EventBus = field(default_factory=EventBus)
    #: The master keys pictures are sealed under; ``None`` for a shop stored unencrypted.
    keys: KeySet | None = None
