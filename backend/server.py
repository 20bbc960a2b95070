"""Provides :class:`PixmartServer`, the public entry point that wires and runs the backend.

Launchers (``pixmart-server``, ``pixmart demo``, tests, benchmarks) use this class and nothing
deeper: it opens storage, builds the services, registers every domain's handlers and serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.metadata
import logging
import os
import signal
import sqlite3
import ssl
import time
from pathlib import Path

import asyncpg

from backend import handshake, tls
from backend.accounts import handlers as account_handlers
from backend.accounts import live as account_live
from backend.accounts.repositories import (
    account_repository,
    event_counter,
    session_repository,
)
from backend.accounts.service import AccountService
from backend.atrest.keys import MasterKeyError
from backend.atrest.server_keys import server_key_set
from backend.catalogue import live as catalogue_live
from backend.config import ServerConfig, format_address
from backend.dispatch import Dispatcher
from backend.domains import Domains, build_domains
from backend.events import EventHub
from backend.metrics import MetricsEndpoint, serve_metrics
from backend.pg_eventbus import event_bus_for
from backend.replay_postgres import PostgresReplayCache
from backend.services import Services
from backend.startup import StartupError, check_shipped_files, check_writable_dir
from backend.storage.database import SchemaTooNewError
from backend.storage.engine import StorageEngine, describe, engine_for
from backend.storage.postgres import PostgresDatabase
from backend.transport import Transport
from protocol.messages.base import PROTOCOL_VERSION, Capabilities

log = logging.getLogger(__name__)

#: Seconds a health check waits for the database before calling it unreachable.
HEALTH_DB_TIMEOUT = 2.0


def package_version() -> str:
    """The installed pixmart's version (``unknown`` when run from a bare source tree)."""
    try:
        return importlib.metadata.version("pixmart")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class DataDirBusy(StartupError):
    """Another server process holds the data dir."""


class PixmartServer:
    """One backend process: storage, services, handlers and the TLS WebSocket transport."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.db: StorageEngine = engine_for(config)
        self.events = EventHub()
        self.accounts = AccountService(
            account_repository(self.db),
            session_repository(self.db),
            config.sessions,
            counter=event_counter(self.db),
            exclusive_job=self.db.exclusive_job,
        )
        # The revocation path: a session that ends is ended at once on every connection logged
        # in with it, and no event is queued or sent for a session that is no longer valid.
        self.accounts.on_session_end(self.events.end_sessions)
        self.events.check_sessions(self.accounts.current)
        # Several instances on one database: the facts behind live events and session endings
        # reach every instance, each applying the visibility rules to its own connections.
        self.bus = event_bus_for(self.db)
        self.events.share_with(self.bus.publish)
        self.accounts.share_ends_with(self.bus.publish)
        account_live.listen(self.bus, self.accounts)
        catalogue_live.listen(self.bus, self.events)
        self._session_sweeper: asyncio.Task[None] | None = None
        self.services = Services(config, self.db, self.accounts, self.events, bus=self.bus)
        # Instances on one PostgreSQL database share their replay cache (a request retried on
        # another instance is still applied once); a SQLite server keeps it in memory.
        self._shared_replay = (
            PostgresReplayCache(self.db) if isinstance(self.db, PostgresDatabase) else None
        )
        self.dispatcher = Dispatcher(
            self.accounts, self._shared_replay, metrics=self.services.metrics
        )
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._transport: Transport | None = None
        #: The domains, built as the server starts (after migrations); ``None`` when stopped.
        self.domains: Domains | None = None
        self._lock_fd: int | None = None
        self.fingerprint = ""
        self.cert_path: Path | None = None

    def capabilities(self) -> Capabilities:
        """What this server offers, sent in every :class:`Welcome`."""
        limits = self.config.limits
        vision = self.domains.vision if self.domains is not None else None
        return Capabilities(
            server_name=self.config.server_name,
            embedder=vision.embedder if vision is not None else "none",
            embedder_version=vision.embedder_version if vision is not None else "",
            max_message_bytes=limits.max_message_bytes,
            max_upload_bytes=limits.max_upload_bytes,
            max_pixels=limits.max_pixels,
            upload_chunk_bytes=limits.upload_chunk_bytes,
            batch_default=limits.batch_default,
            batch_max=limits.batch_max,
            currency=self.config.currency,
            vision=self.vision_status(),
        )

    async def health(self) -> tuple[bool, dict[str, object]]:
        """Whether this server can serve, with what a supervisor wants to see.

        Image search still warming up (or unavailable) does not make the server unhealthy:
        everything else serves, and taking the instance out of rotation would not help.
        """
        try:
            async with asyncio.timeout(HEALTH_DB_TIMEOUT):
                await self.db.fetchone("SELECT 1")
            database = True
        except Exception:  # any failure to answer is what the check is for
            database = False
        return database, {
            "version": package_version(),
            "protocol": PROTOCOL_VERSION,
            "database": "ok" if database else "unreachable",
            "vision": self.vision_status(),
        }

    async def vision_ready(self) -> str:
        """Wait until image search has warmed up (or failed); returns :meth:`vision_status`.

        Returns at once on a server without the model. For launchers and tests that need
        similar-image search right after :meth:`start`; clients simply retry.
        """
        vision = self.domains.vision.service if self.domains is not None else None
        if vision is not None:
            await vision.wait_ready()
        return self.vision_status()

    def vision_status(self) -> str:
        """``off`` (no model), ``warming``, ``ready`` or ``failed``."""
        return "off" if self.domains is None else self.domains.vision.status

    def tls_files(self) -> tuple[Path, Path]:
        """The certificate and key in use, creating a self-signed pair on first start."""
        if self.config.cert_file and self.config.key_file:
            return self.config.cert_file, self.config.key_file
        return tls.ensure_self_signed(self.config.data_dir)

    async def start(self) -> int:
        """Check, open storage, register handlers and start serving; return the bound port.

        Everything that can doom a start is checked before anything slow begins, in the order
        an operator would fix it; the image model warms up after the server listens.

        Raises:
            StartupError: The server cannot start (the message names the cause and the fix);
                whatever had started is stopped again and the data dir is unlocked.
        """
        started = time.monotonic()
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        assert self._transport is not None
        # Printed, not only logged: the person starting the server must see what to pin.
        print(
            f"pixmart server listening on wss://{self.config.host}:{self._transport.port}\n"
            f"certificate SHA-256 fingerprint: {self.fingerprint}",
            flush=True,
        )
        log.info(
            "listening %.2f s after start; image search: %s",
            time.monotonic() - started,
            self.vision_status(),
        )
        return self._transport.port

    async def _start(self) -> None:
        config = self.config
        check_shipped_files()
        # The data dir holds the private key and every user's pictures: owner-only.
        check_writable_dir(
            config.data_dir, "data dir", "pick another --data-dir or fix its permissions"
        )
        self._lock_data_dir()
        tls_context = self._tls_context()
        # Bound before the slow parts so a taken port fails at once; clients are turned away
        # with 503 until every handler is registered.
        self._transport = Transport(
            config, self.dispatcher, self.events, tls_context, health=self.health
        )
        try:
            await self._transport.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
                "stop what uses that port or pick another with --port",
            ) from None
        if config.metrics_address is not None:
            metrics = self.services.metrics
            try:
                self._metrics_endpoint = serve_metrics(metrics, config.metrics_address)
            except OSError as exc:
                raise StartupError(
                    f"cannot serve metrics on {format_address(*config.metrics_address)}: "
                    f"{exc.strerror or exc}",
                    "stop what uses that port or pick another with --metrics",
                ) from None
            log.info("serving metrics on %s", self._metrics_endpoint.url)
        await self._open_database()
        if self._shared_replay is not None:
            await self._shared_replay.start()
        self._session_sweeper = asyncio.create_task(
            self.accounts.sweep_forever(), name="pixmart-session-sweeper"
        )
        handshake.register(self.dispatcher, self.capabilities)
        account_handlers.register(self.dispatcher, self.services)
        try:
            self.services.keys = server_key_set(config)
        except MasterKeyError as exc:
            raise StartupError(str(exc), "see `pixmart-server keys --help`") from None
        self.domains = build_domains(self.services)
        for domain in self.domains.all:
            await domain.start()
            domain.register(self.dispatcher)
        await self.bus.start()  # after the domains, which register the facts they receive
        self._transport.accepting = True

    def _tls_context(self) -> ssl.SSLContext:
        try:
            cert, key = self.tls_files()
            context = tls.server_context(cert, key)
            self.fingerprint = tls.fingerprint_of_pem_file(cert)
        except (OSError, ssl.SSLError, ValueError) as exc:
            given = self.config.cert_file is not None
            where = (
                f"{self.config.cert_file} / {self.config.key_file}"
                if given
                else f"the self-signed pair in {self.config.data_dir}"
            )
            fix = (
                "pass a readable PEM certificate and its matching key with --cert and --key"
                if given
                else "remove server-cert.pem and server-key.pem from the data dir to make a new "
                "pair (clients will then see a new fingerprint)"
            )
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise StartupError(f"cannot use the certificate {where}: {reason}", fix) from None
        self.cert_path = cert
        return context

    async def _open_database(self) -> None:
        where = describe(self.db)
        try:
            await self.db.open()
        except SchemaTooNewError as exc:
            raise StartupError(
                f"the database {where} was written by a newer pixmart: {exc}",
                "upgrade pixmart (pip install --upgrade 'pixmart[server]')",
            ) from None
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            raise StartupError(
                f"cannot open or migrate the database {where}: {exc}",
                "restore it from a backup (pixmart-server restore) or move it away to start "
                "an empty shop",
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StartupError(
                f"cannot open or migrate the database {where}: {type(exc).__name__}: {exc}",
                "check that PostgreSQL runs and that the URL, user and password are right "
                "(make services starts one for development)",
            ) from None

    def _lock_data_dir(self) -> None:
        """Hold an exclusive lock on the data dir: two servers on one dir would corrupt it.

        The operating system drops the lock when the process dies, even by SIGKILL.
        """
        path = self.config.data_dir / "server.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(
                f"another pixmart server is using the data dir {self.config.data_dir}",
                "stop it first, or give this one another --data-dir",
            ) from None
        self._lock_fd = fd

    def _unlock_data_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._transport is not None
        return self._transport.port

    @property
    def connection_count(self) -> int:
        """Open connections right now."""
        return self._transport.connection_count if self._transport else 0

    @property
    def metrics_port(self) -> int | None:
        """The metrics endpoint's bound port (useful with port 0), or ``None`` without one."""
        return self._metrics_endpoint.port if self._metrics_endpoint else None

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, finish in-flight work, close with 1001, flush."""
        if self._transport is not None:
            await self._transport.stop()
            self._transport = None
        if self._metrics_endpoint is not None:
            # Off the loop: the HTTP server notices the shutdown within its 0.5 s poll.
            await asyncio.to_thread(self._metrics_endpoint.close)
            self._metrics_endpoint = None
        if self._session_sweeper is not None:
            self._session_sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._session_sweeper
            self._session_sweeper = None
        await self.bus.close()
        if self.domains is not None:
            for domain in reversed(self.domains.all):
                await domain.stop()
            self.domains = None
        if self._shared_replay is not None:
            await self._shared_replay.close()
        await self.db.close()
        self._unlock_data_dir()

    async def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await self.stop()
