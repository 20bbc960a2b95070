"""Provides :func:`trust_identity`: what vouches for a server, as a key for what is cached of it.

Whatever the client keeps of a server on disk (pictures, the last gallery) is filed under the
server's address *and* this identity, so a different server answering at a known address (a
reinstall with a new certificate, an address reused) never sees or shows what another left.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from protocol.trust import TrustPolicy, normalise_fingerprint


def host_port(url: str) -> str:
    """``host:port`` of a ``wss://`` address, as the known-servers file names servers."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 443}"


def trust_identity(trust: TrustPolicy, url: str) -> str | None:
    """The identity the client trusts ``url`` under, or ``None`` if nothing vouches for it yet.

    ``sha256:<fingerprint>`` for a pinned certificate (``--trust`` or the known-servers file),
    ``ca:<hash of the CA file>`` when a CA verifies the server. Reads the known-servers file (and
    the CA file), both small.
    """
    if trust.ca_file is not None:
        try:
            return "ca:" + hashlib.sha256(trust.ca_file.read_bytes()).hexdigest()
        except OSError:
            return None
    if trust.fingerprint is not None:
        try:
            return "sha256:" + normalise_fingerprint(trust.fingerprint)
        except ValueError:
            return None
    pinned = trust.known.get(host_port(url)) if trust.known is not None else None
    return f"sha256:{pinned}" if pinned else None


__all__ = ["host_port", "trust_identity"]
