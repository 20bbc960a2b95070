"""Provides the container of domain services that handlers are registered against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.accounts.service import AccountService
from backend.config import ServerConfig
from backend.events import EventHub
from backend.metrics import EmbeddingStats, ServerMetrics
from backend.storage.database import Database


@dataclass
class Services:
    """Everything a request handler may use; built once per server process."""

    config: ServerConfig
    db: Database
    accounts: AccountService
    events: EventHub
    #: Domain services added as the domains land (catalogue, vision, commerce), by name.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The server's Prometheus metrics; domains record what they do here.
    metrics: ServerMetrics = field(default_factory=ServerMetrics)

    def __post_init__(self) -> None:
        # The vision domain publishes its service (and worker) only once started, and not at
        # all without the image model, so the metrics look the worker up at every scrape.
        self.metrics.watch_embeddings(self._embedding_worker)

    def _embedding_worker(self) -> EmbeddingStats | None:
        worker = getattr(self.extra.get("vision"), "worker", None)
        return worker if isinstance(worker, EmbeddingStats) else None
