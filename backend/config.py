"""Provides the server configuration: addresses, paths, limits and timeouts, with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from backend.logs import LogFormat
from protocol.codec import MAX_PRELOGIN_MESSAGE_BYTES

APP_NAME = "pixmart"

#: Where the metrics endpoint listens when ``--metrics`` names only a port: it is for the operator.
DEFAULT_METRICS_HOST = "127.0.0.1"


def _env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value else None


def default_master_key_file() -> Path:
    """Where a server keeps its master key unless told otherwise: the user config dir
    (``PIXMART_CONFIG_DIR`` overrides it), apart from the data it protects."""
    folder = os.environ.get("PIXMART_CONFIG_DIR") or platformdirs.user_config_dir(
        APP_NAME, appauthor=False
    )
    return Path(folder) / "server-master.key"


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
    #: Frames larger than this are cut by the transport with close code 1009 (after login).
    max_frame_bytes: int = 16 * 1024 * 1024
    #: Frames larger than this are cut with 1009 before login, from the frame header, so their
    #: payload is never buffered: Hello, Login, CreateAccount and Resume take a few hundred bytes.
    max_prelogin_frame_bytes: int = MAX_PRELOGIN_MESSAGE_BYTES
    #: Bytes of incoming messages over ``max_prelogin_frame_bytes``, server-wide, from their
    #: frame header until their reply is sent (buffered, queued, decoded, served). A message
    #: counts twice, its frame and its decoded copy: 8 messages of 16 MiB, 128 upload chunks.
    #: One that does not fit waits before its payload is read, and its connection is not read
    #: meanwhile (TCP back-pressure); smaller messages are not counted.
    max_inflight_frame_bytes: int = 256 * 1024 * 1024
    #: The part of it one client address may hold: large messages that never finish (a
    #: fragment never followed, a frame sent a byte at a time until the idle timeout) from
    #: one address held all of it and every upload waited. Two largest messages' worth.
    max_inflight_frame_bytes_per_address: int = 64 * 1024 * 1024
    #: Complete frames websockets queues per connection before it stops reading the socket.
    max_queued_frames: int = 1
    max_connections: int = 1000
    #: Open connections, logged in or not, from one client address: a login leaves the
    #: pre-login caps, and one account resumed again and again would otherwise fill
    #: ``max_connections``. A quarter of it: room for a NAT full of people (and the load
    #: benchmarks' 200 clients on one loopback address). Past it: HTTP 429, Retry-After.
    max_connections_per_address: int = 256
    #: Connections not logged in, server-wide: half of ``max_connections``, so connections that
    #: never log in cannot take the room of logged-in sessions. Past it: HTTP 503, Retry-After.
    max_unauthenticated: int = 500
    #: Connections not logged in from one client address (an IPv4 address, an IPv6 /64): room
    #: for an office behind one NAT logging in at once, while one attacker needs 16 addresses to
    #: fill the server-wide share. Past it: HTTP 429 with a Retry-After.
    max_unauthenticated_per_address: int = 32
    #: Connections accepted and not yet past their WebSocket upgrade request (TLS handshake,
    #: HTTP request), from one client address and server-wide: each holds a socket and TLS
    #: buffers (~300 KB) before the caps above can count it. Past either, a newcomer is reset
    #: at once; when all are taken, the busiest address's oldest makes room for one from a
    #: less busy address. Twice the pre-login cap per address, so a NAT burst meets the
    #: pre-login cap's HTTP 429 with its Retry-After first.
    max_handshaking_per_address: int = 64
    max_handshaking: int = 500
    #: Seconds from the TLS handshake to log in, else the connection is closed; no request (a
    #: repeated Hello included) extends it. A logout starts a new one.
    login_deadline: float = 30.0
    #: Seconds a client has to finish the TLS handshake (asyncio's default is 60).
    tls_handshake_timeout: float = 10.0
    #: Requests one connection may have in flight at once; more wait (back-pressure).
    max_in_flight: int = 16
    #: Requests running at once from one client address, for one user (from all its addresses)
    #: and server-wide, counted until each ends, also after its connection closed: requests
    #: outlive their connection (retries find their reply in the replay cache), so an address
    #: that reset and reconnected kept ``max_in_flight`` more running each time (4,096 per
    #: address with its 256 connections, unbounded when cycling). Past any of them a request
    #: is ``rate_limited`` at once (retry after 1 s), not queued. Per address: one for each
    #: connection it may open (a NAT full of people; the load benchmark's 200 clients on one
    #: address). Per user: a TUI runs a few, a bulk upload 4, the load benchmark 40 sessions
    #: of one account one each. Server-wide: an attacker needs 16 addresses to fill it.
    max_running_requests_per_address: int = 256
    max_running_requests_per_user: int = 64
    max_running_requests: int = 4096
    #: Requests per second, and the burst, that the connections of one client address may
    #: send together before they log in (Hello, Login, Resume, CreateAccount: two each for a
    #: client that logs in; 400 at once is 200 clients reconnecting after a cut).
    prelogin_request_rate: float = 100.0
    prelogin_request_burst: int = 400
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
    #: Pixels the decodes of example pictures (search by picture) may hold at once, server-wide;
    #: a decode that does not fit waits its turn. A pixel takes up to 4 bytes, so 50 MP is about
    #: 200 MB. A JPEG counts at the 1/8-1/2 scale it is decoded at (a 48 MP photo: 0.75 MP); PNG
    #: and WebP have no reduced decoding and count whole. Equal to ``max_pixels``: a largest
    #: picture runs alone (one over the budget would too), smaller ones share.
    search_decode_pixels: int = 50_000_000
    #: Unfinished uploads one user may hold at once, and the bytes they declare in all: each
    #: sits on disk until finished, cancelled or expired (``upload_expiry``). 16 leaves room for
    #: the clients' 4 parallel uploads plus some abandoned ones; 256 MiB is five full-size files.
    max_open_uploads: int = 16
    max_open_upload_bytes: int = 256 * 1024 * 1024
    #: The bytes everyone's unfinished uploads declare together: accounts are cheap (five an
    #: hour per address), and each brought 256 MiB of disk held for a day. Past it, a new
    #: upload is ``unavailable`` for a while; those begun go on.
    max_open_upload_bytes_total: int = 8 * 1024 * 1024 * 1024
    batch_default: int = 24
    batch_max: int = 100


@dataclass(frozen=True)
class SessionPolicy:
    """Session lifetimes, failed-login throttling, sign-up limits, the password-hashing budget."""

    idle_expiry: float = 14 * 24 * 3600.0
    absolute_expiry: float = 90 * 24 * 3600.0
    #: Seconds between sweeps that end sessions which expired unused (their connections are
    #: told) or were deleted by another process, e.g. ``pixmart-server admin remove``.
    sweep_interval: float = 5.0
    #: Sessions one user may hold: a login past it ends the one used longest ago. Each is a
    #: stored row and, while used, an entry in memory; without a cap, a script logging in
    #: again and again grew both without end. Room for every device a person has, and more.
    max_sessions_per_user: int = 64
    #: Failed logins allowed per account / per address inside ``failure_window`` seconds.
    max_failures_per_account: int = 5
    max_failures_per_address: int = 20
    failure_window: float = 300.0
    lockout: float = 60.0
    #: Accounts one client address (an IPv6 /64) may create per ``account_window`` seconds, and
    #: the whole server may: each costs a password hash and brings its own upload quota.
    max_accounts_per_address: int = 5
    max_accounts_total: int = 200
    account_window: float = 3600.0
    #: Argon2id runs (login checks, new passwords) at once, server-wide: half the cores, so a
    #: login flood leaves the event loop a core (1 on the 2-core reference machine).
    password_hash_workers: int = max(1, (os.cpu_count() or 2) // 2)
    #: Runs allowed to wait for a worker; beyond that, ``rate_limited`` with a retry-after (16
    #: waits at ~30 ms each keep a login under about half a second).
    password_hash_queue: int = 16
    #: Running plus waiting runs one client address may hold, so one address cannot fill the
    #: queue for everyone.
    password_hashes_per_address: int = 4


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
    #: Similarity above which an upload reply names near-duplicates. Whitened embeddings
    #: (pipeline revision 6) score altered copies a little lower: 0.88 finds 98% of them
    #: (brighter, recompressed, half size), as 0.90-0.92 did before; two different pictures of
    #: the development set scored at most 0.40 (``docs/vision-quality.md``).
    near_duplicate_threshold: float = 0.88
    #: Whether to load the TensorFlow embedder (tests that do not need it switch it off).
    enable_vision: bool = True
    #: Where the converted model is cached; ``None`` means ``<data_dir>/models/...``.
    model_cache_dir: Path | None = None
    #: (host, port) of the Prometheus endpoint (port 0 picks a free one); ``None``: no endpoint.
    metrics_address: tuple[str, int] | None = None
    #: The log format chosen at launch. The launcher applies it (``configure_logging``): logging
    #: is process-wide, and tests run several servers in one process.
    log_format: LogFormat = "text"
    #: A ``postgresql://`` URL, or ``None`` for the SQLite file in the data dir (the default).
    database: str | None = field(default_factory=lambda: os.environ.get("PIXMART_DATABASE"))
    #: Where pictures are stored: an ``s3://BUCKET[/PREFIX]?endpoint=...`` URL (credentials
    #: from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), or ``None`` for the data dir's
    #: ``blobs`` folder (the default).
    blobs: str | None = field(default_factory=lambda: os.environ.get("PIXMART_BLOBS"))
    #: The master key file that wraps the pictures' data keys (``--key-file``); ``None`` means
    #: :func:`default_master_key_file`, made on first use. Never inside the data dir.
    master_key_file: Path | None = field(default_factory=lambda: _env_path("PIXMART_KEY_FILE"))
    #: A key also accepted for opening pictures while a rotation away from it is under way
    #: (``--old-key-file``).
    old_master_key_file: Path | None = field(
        default_factory=lambda: _env_path("PIXMART_OLD_KEY_FILE")
    )
    #: Whether pictures are sealed at rest; only a store never encrypted may run without
    #: (``--unencrypted``, for comparisons), and a server refuses to open an encrypted one so.
    encrypt_at_rest: bool = field(
        default_factory=lambda: os.environ.get("PIXMART_UNENCRYPTED", "") not in ("1", "yes")
    )

    @property
    def db_path(self) -> Path:
        """The SQLite database file (used when :attr:`database` is not set)."""
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
