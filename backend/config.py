"""Provides the server configuration: addresses, paths, limits and timeouts, with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_NAME = "pixmart"


def default_data_dir() -> Path:
    """The data dir: ``PIXMART_DATA_DIR`` if set, else the platform's user data dir."""
    env = os.environ.get("PIXMART_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Limits:
    """Per-server and per-connection limits that keep one peer from hurting the others."""

    max_message_bytes: int = 8 * 1024 * 1024
    #: Frames larger than this are cut by the transport with close code 1009.
    max_frame_bytes: int = 16 * 1024 * 1024
    max_connections: int = 1000
    #: Requests one connection may have in flight at once; more wait (back-pressure).
    max_in_flight: int = 16
    #: Sustained requests per second per connection, and the burst allowed above it.
    request_rate: float = 100.0
    request_burst: int = 200
    #: Malformed frames tolerated per connection within ``garbage_window`` seconds.
    max_garbage: int = 20
    garbage_window: float = 10.0
    idle_timeout: float = 600.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    upload_chunk_bytes: int = 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    batch_default: int = 24
    batch_max: int = 100


@dataclass(frozen=True)
class SessionPolicy:
    """Session lifetimes and failed-login throttling."""

    idle_expiry: float = 14 * 24 * 3600.0
    absolute_expiry: float = 90 * 24 * 3600.0
    #: Failed logins allowed per account / per address inside ``failure_window`` seconds.
    max_failures_per_account: int = 5
    max_failures_per_address: int = 20
    failure_window: float = 300.0
    lockout: float = 60.0


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start."""

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8765
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Browser origins allowed to open a WebSocket; handshakes without an Origin (every
    #: non-browser client) are always allowed.
    allowed_origins: tuple[str, ...] = ()
    currency: str = "EUR"
    server_name: str = "pixmart"
    limits: Limits = field(default_factory=Limits)
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    #: Seconds after which an unfinished upload is discarded.
    upload_expiry: float = 24 * 3600.0
    #: Similarity above which an upload reply names near-duplicates.
    near_duplicate_threshold: float = 0.92
    #: Whether to load the TensorFlow embedder (tests that do not need it switch it off).
    enable_vision: bool = True
    #: Where the converted model is cached; ``None`` means ``<data_dir>/models/...``.
    model_cache_dir: Path | None = None

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "pixmart.sqlite3"
