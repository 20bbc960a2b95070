"""Provides :class:`PixmartServer`, the public entry point that wires and runs the backend.

Launchers (``pixmart-server``, ``pixmart demo``, tests, benchmarks) use this class and nothing
deeper: it opens storage, builds the services, registers every domain's handlers and serves.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from pathlib import Path

from backend import handshake, tls
from backend.accounts import handlers as account_handlers
from backend.accounts.service import AccountService
from backend.config import ServerConfig
from backend.dispatch import Dispatcher
from backend.domains import Domain, domain_factories
from backend.events import EventHub
from backend.services import Services
from backend.storage.database import Database
from backend.transport import Transport
from protocol.messages.base import Capabilities

log = logging.getLogger(__name__)


class DataDirBusy(RuntimeError):
    """Another server process holds the data dir."""


class PixmartServer:
    """One backend process: storage, services, handlers and the TLS WebSocket transport."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.db = Database(config.db_path)
        self.events = EventHub()
        self.accounts = AccountService(self.db, config.sessions)
        self.services = Services(config, self.db, self.accounts, self.events)
        self.dispatcher = Dispatcher(self.accounts)
        self._transport: Transport | None = None
        self.domains: list[Domain] = []
        self._lock_fd: int | None = None
        self.fingerprint = ""
        self.cert_path: Path | None = None

    def capabilities(self) -> Capabilities:
        """What this server offers, sent in every :class:`Welcome`."""
        limits = self.config.limits
        embedder = self.services.extra.get("embedder_name", "none")
        embedder_version = self.services.extra.get("embedder_version", "")
        return Capabilities(
            server_name=self.config.server_name,
            embedder=str(embedder),
            embedder_version=str(embedder_version),
            max_message_bytes=limits.max_message_bytes,
            max_upload_bytes=limits.max_upload_bytes,
            max_pixels=limits.max_pixels,
            upload_chunk_bytes=limits.upload_chunk_bytes,
            batch_default=limits.batch_default,
            batch_max=limits.batch_max,
            currency=self.config.currency,
        )

    def tls_files(self) -> tuple[Path, Path]:
        """The certificate and key in use, creating a self-signed pair on first start."""
        if self.config.cert_file and self.config.key_file:
            return self.config.cert_file, self.config.key_file
        return tls.ensure_self_signed(self.config.data_dir)

    async def start(self) -> int:
        """Open storage, register handlers and start serving; return the bound port."""
        # The data dir holds the private key and every user's pictures: owner-only.
        self.config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_data_dir()
        cert, key = self.tls_files()
        self.cert_path = cert
        self.fingerprint = tls.fingerprint_of_pem_file(cert)
        await self.db.open()
        handshake.register(self.dispatcher, self.capabilities)
        account_handlers.register(self.dispatcher, self.services)
        for factory in domain_factories():
            domain = factory(self.services)
            await domain.start()
            domain.register(self.dispatcher)
            self.domains.append(domain)
        self._transport = Transport(
            self.config, self.dispatcher, self.events, tls.server_context(cert, key)
        )
        await self._transport.start()
        # Printed, not only logged: the person starting the server must see what to pin.
        print(
            f"pixmart server listening on wss://{self.config.host}:{self._transport.port}\n"
            f"certificate SHA-256 fingerprint: {self.fingerprint}",
            flush=True,
        )
        log.debug(
            "pixmart serving on wss://%s:%d  certificate SHA-256 %s",
            self.config.host,
            self._transport.port,
            self.fingerprint,
        )
        return self._transport.port

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
                f"Another pixmart server is using {self.config.data_dir}; stop it first"
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

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, finish in-flight work, close with 1001, flush."""
        if self._transport is not None:
            await self._transport.stop()
            self._transport = None
        for domain in reversed(self.domains):
            await domain.stop()
        self.domains.clear()
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
