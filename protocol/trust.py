"""Provides server trust for clients: CA verification or SSH-style fingerprint pinning.

A client either verifies the server against a CA file, or pins the SHA-256 fingerprint of the
server's certificate on first use in a known-servers file. A fingerprint that differs from the
pinned one is a hard failure: the connection is dropped before any credential is sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path


class TrustError(Exception):
    """The server could not be trusted; nothing was sent to it."""


class FingerprintMismatch(TrustError):
    """The server presented a certificate other than the pinned one."""

    def __init__(self, server: str, pinned: str, presented: str) -> None:
        super().__init__(
            f"The certificate of {server} has CHANGED.\n"
            f"  pinned:    {pinned}\n"
            f"  presented: {presented}\n"
            "This may be an attack, or the server was reinstalled. Nothing was sent. If you trust "
            "the new certificate, remove the old entry from the known-servers file or pass "
            "--trust with the new fingerprint."
        )
        self.server = server
        self.pinned = pinned
        self.presented = presented


class UnknownServer(TrustError):
    """First contact with a server whose fingerprint nobody confirmed."""

    def __init__(self, server: str, presented: str) -> None:
        super().__init__(
            f"{server} is not a known server. Its certificate fingerprint is\n  {presented}\n"
            "Check it against the one the server printed, then pass --trust with it."
        )
        self.server = server
        self.presented = presented


def normalise_fingerprint(text: str) -> str:
    """Canonical form: upper-case hex pairs separated by colons; accepts any separators."""
    digits = "".join(ch for ch in text if ch in "0123456789abcdefABCDEF").upper()
    if len(digits) != 64:
        raise ValueError(f"not a SHA-256 fingerprint: {text!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def fingerprint_of_der(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate."""
    return normalise_fingerprint(hashlib.sha256(der).hexdigest())


class KnownServers:
    """The known-servers file: ``{"host:port": "AA:BB:..."}``, written atomically, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, server: str) -> str | None:
        """The pinned fingerprint of ``server`` (``host:port``), if any."""
        return self._load().get(server)

    def pin(self, server: str, fingerprint: str) -> None:
        """Remember ``fingerprint`` for ``server``."""
        entries = self._load()
        entries[server] = normalise_fingerprint(fingerprint)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


#: Asked on first contact with (server, fingerprint); True pins it, False refuses.
FirstUseDecider = Callable[[str, str], Awaitable[bool]]


@dataclass
class TrustPolicy:
    """How a client decides to trust a server.

    Attributes:
        ca_file: verify the chain and host name against this CA bundle (no pinning).
        fingerprint: pin this fingerprint (``--trust``); saved to ``known`` when given.
        known: the known-servers store for trust on first use.
        on_first_use: asked when the server is unknown; without it, first contact fails.
    """

    ca_file: Path | None = None
    fingerprint: str | None = None
    known: KnownServers | None = None
    on_first_use: FirstUseDecider | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The client TLS context: TLS 1.3 only; chain checks only in CA mode."""
        if self.ca_file is not None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        else:
            # Pinning replaces chain validation: the fingerprint check below is the trust anchor.
            # Not create_default_context(): it loads the system CA store (~25 ms of CPU on the
            # event loop at every connect and reconnect) only for it to go unused.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return context

    async def check(self, server: str, presented: str) -> None:
        """Decide about the certificate ``presented`` by ``server``; raise :class:`TrustError`."""
        if self.ca_file is not None:
            return  # the TLS handshake verified the chain and the host name
        pinned = self.known.get(server) if self.known else None
        if self.fingerprint is not None:
            wanted = normalise_fingerprint(self.fingerprint)
            if wanted != presented:
                raise FingerprintMismatch(server, wanted, presented)
            if self.known is not None and pinned != wanted:
                self.known.pin(server, wanted)
            return
        if pinned is not None:
            if pinned != presented:
                raise FingerprintMismatch(server, pinned, presented)
            return
        if self.on_first_use is not None and await self.on_first_use(server, presented):
            if self.known is not None:
                self.known.pin(server, presented)
            self.fingerprint = presented
            return
        raise UnknownServer(server, presented)
