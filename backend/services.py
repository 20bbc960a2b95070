"""Provides the container of domain services that handlers are registered against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.accounts.service import AccountService
from backend.config import ServerConfig
from backend.events import EventHub
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
