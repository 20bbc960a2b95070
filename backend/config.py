"""Provides the server configuration: addresses, paths, limits and timeouts, with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from backend.logs import LogFormat

APP_NAME = "pixmart"

#: Where the metrics endpoint listens when ``--metrics`` names only a port: it is for the operator.
DEFAULT_METRICS_HOST = "127.0.0.1"


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
    #: (host, port) of the Prometheus endpoint (port 0 picks a free one); ``None``: no endpoint.
    metrics_address: tuple[str, int] | None = None
    #: The log format chosen at launch. The launcher applies it (``configure_logging``): logging
    #: is process-wide, and tests run several servers in one process.
    log_format: LogFormat = "text"

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "pixmart.sqlite3"


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, *, default_host: str = DEFAULT_METRICS_HOST) -> tuple[str, int]:
    """Read ``HOST:PORT``, ``:PORT`` or ``PORT`` (an IPv6 host in brackets: ``[::1]:9100``).

    Args:
        text: The address as the operator wrote it.
        default_host: The host when ``text`` names only a port.

    Raises:
        ValueError: ``text`` is not one of those forms, or the port is not 0-65535; the
            message says what is wrong.
    """
    text = text.strip()
    if not text:
        raise ValueError("expected PORT, :PORT or HOST:PORT")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: the IPv6 address lacks its closing ']'")
        if not host:
            raise ValueError(f"{text!r}: the brackets hold no address")
        if not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected :PORT after the IPv6 address, e.g. [::1]:9100")
        port_text = rest[1:]
    elif text.count(":") > 1:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:9100")
    elif ":" in text:
        host, _, port_text = text.partition(":")
        host = host or default_host
    else:
        host, port_text = default_host, text
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"{text!r}: the port must be a number, got {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r}: the port must be 0-65535, got {port}")
    return host, port
