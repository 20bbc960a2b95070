"""Transport security: certificate pinning, trust on first use, CA mode, TLS 1.3 only, no ws://.

Proves that a pinned fingerprint that does not match refuses the connection before anything is
sent (the server dispatches no request at all: no Hello, no Resume with a saved token, no login)
and the error names both fingerprints; that first contact without a pin and without a decider
fails with :class:`UnknownServer`; that an accepting first-use decider pins the fingerprint in the
known-servers file (mode 0600) and a refusing one does not; that CA mode accepts a CA-issued
server certificate and refuses one from another CA; that plain ``ws://`` and TLS 1.2 are refused.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from backend import tls
from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import ConnectionState, Offline, Session
from protocol.messages.base import Request
from protocol.trust import FingerprintMismatch, KnownServers, TrustPolicy, UnknownServer
from tests.conftest import TEST_BACKOFF
from tests.support import insecure_tls13_context, record_requests, running_server
from tests.support.certs import issue_server_pair

WRONG_PIN = ":".join(["AB"] * 32)


@pytest.fixture
def dispatched(server: PixmartServer, monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """Every request the server dispatches during the test."""
    return record_requests(server, monkeypatch)


def _session(server: PixmartServer, trust: TrustPolicy, **kwargs: object) -> Session:
    return Session(
        f"wss://127.0.0.1:{server.port}",
        trust,
        backoff=TEST_BACKOFF,
        **kwargs,  # type: ignore[arg-type]
    )


# -- pinning -------------------------------------------------------------------------------------


async def test_fingerprint_mismatch_refuses_before_sending_anything(
    server: PixmartServer, dispatched: list[Request]
) -> None:
    session = _session(server, TrustPolicy(fingerprint=WRONG_PIN), token="a-saved-token")
    with pytest.raises(FingerprintMismatch) as caught:
        await session.connect()
    message = str(caught.value)
    assert WRONG_PIN in message
    assert server.fingerprint in message
    assert "CHANGED" in message and "Nothing was sent" in message
    assert caught.value.pinned == WRONG_PIN
    assert caught.value.presented == server.fingerprint
    assert session.status.state is ConnectionState.OFFLINE
    # No hello, and in particular the saved token never left the client.
    assert dispatched == []
    await session.close()


async def test_known_servers_mismatch_is_refused_too(
    server: PixmartServer, dispatched: list[Request], tmp_path: Path
) -> None:
    known = KnownServers(tmp_path / "known.json")
    known.pin(f"127.0.0.1:{server.port}", WRONG_PIN)
    session = _session(server, TrustPolicy(known=known))
    with pytest.raises(FingerprintMismatch):
        await session.connect()
    assert dispatched == []
    assert known.get(f"127.0.0.1:{server.port}") == WRONG_PIN  # not silently re-pinned
    await session.close()


async def test_pin_accepts_any_fingerprint_spelling(server: PixmartServer) -> None:
    sloppy = server.fingerprint.replace(":", "").lower()
    session = _session(server, TrustPolicy(fingerprint=sloppy))
    await session.connect()
    try:
        assert session.connected
        assert session.status.fingerprint == server.fingerprint
    finally:
        await session.close()


async def test_first_contact_without_pin_or_decider_is_unknown(
    server: PixmartServer, dispatched: list[Request], tmp_path: Path
) -> None:
    known = KnownServers(tmp_path / "known.json")
    session = _session(server, TrustPolicy(known=known))
    with pytest.raises(UnknownServer) as caught:
        await session.connect()
    assert server.fingerprint in str(caught.value)
    assert caught.value.presented == server.fingerprint
    assert dispatched == []
    assert not known.path.exists()
    await session.close()


async def test_first_use_decider_pins_to_the_known_servers_file(
    server: PixmartServer, tmp_path: Path
) -> None:
    known = KnownServers(tmp_path / "config" / "known_servers.json")
    asked: list[tuple[str, str]] = []

    async def accept(name: str, fingerprint: str) -> bool:
        asked.append((name, fingerprint))
        return True

    name = f"127.0.0.1:{server.port}"
    session = _session(server, TrustPolicy(known=known, on_first_use=accept))
    await session.connect()
    await session.close()
    assert asked == [(name, server.fingerprint)]
    assert json.loads(known.path.read_text()) == {name: server.fingerprint}
    assert stat.S_IMODE(known.path.stat().st_mode) == 0o600

    # Later sessions trust the pin without asking.
    async def must_not_ask(name: str, fingerprint: str) -> bool:
        raise AssertionError("asked again about a pinned server")

    later = _session(server, TrustPolicy(known=known, on_first_use=must_not_ask))
    await later.connect()
    try:
        assert later.connected
    finally:
        await later.close()


async def test_first_use_decider_can_refuse(
    server: PixmartServer, dispatched: list[Request], tmp_path: Path
) -> None:
    known = KnownServers(tmp_path / "known.json")

    async def refuse(name: str, fingerprint: str) -> bool:
        return False

    session = _session(server, TrustPolicy(known=known, on_first_use=refuse))
    with pytest.raises(UnknownServer):
        await session.connect()
    assert known.get(f"127.0.0.1:{server.port}") is None
    assert dispatched == []
    await session.close()


async def test_changed_certificate_after_reconnect_goes_offline(
    server_config: ServerConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that comes back with another certificate is not trusted, even mid-session."""
    first = PixmartServer(server_config)
    port = await first.start()
    second: PixmartServer | None = None
    session = Session(
        f"wss://127.0.0.1:{port}", TrustPolicy(fingerprint=first.fingerprint), backoff=TEST_BACKOFF
    )
    try:
        await session.connect()
        await first.stop()
        # Same port, new data dir: a new self-signed certificate.
        second = PixmartServer(replace(server_config, port=port, data_dir=tmp_path / "other"))
        await second.start()
        assert second.fingerprint != first.fingerprint
        reached_second = record_requests(second, monkeypatch)
        offline = asyncio.Event()
        session.on_status(lambda s: offline.set() if s.state is ConnectionState.OFFLINE else None)
        async with asyncio.timeout(5):
            await offline.wait()
        assert session.status.reason is not None and "CHANGED" in session.status.reason
        assert reached_second == []
        assert session.status.state is ConnectionState.OFFLINE  # it stopped trying
        with pytest.raises(Offline, match="CHANGED"):
            await session.whoami()
    finally:
        await session.close()
        if second is not None:
            await second.stop()
        await first.stop()


# -- CA mode -------------------------------------------------------------------------------------


async def test_ca_mode_accepts_a_ca_issued_certificate(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    pair = issue_server_pair(tmp_path / "pki")
    config = replace(server_config, cert_file=pair.cert_file, key_file=pair.key_file)
    async with running_server(config) as server:
        assert server.fingerprint == tls.fingerprint_of_pem_file(pair.cert_file)
        for host in ("127.0.0.1", "localhost"):
            session = Session(f"wss://{host}:{server.port}", TrustPolicy(ca_file=pair.ca_file))
            await session.connect()
            try:
                await session.create_account(f"ca-user-{host[0]}", "password123")
                assert session.status.tls_version == "TLSv1.3"
            finally:
                await session.close()
        # The CA's own data dir keeps no self-signed pair when a CA-issued one is configured.
        assert not (server_config.data_dir / tls.CERT_NAME).exists()


async def test_ca_mode_refuses_a_certificate_from_another_ca(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    pair = issue_server_pair(tmp_path / "pki")
    stranger = issue_server_pair(tmp_path / "other-pki", ca_name="another CA")
    config = replace(server_config, cert_file=pair.cert_file, key_file=pair.key_file)
    async with running_server(config) as server:
        session = Session(f"wss://127.0.0.1:{server.port}", TrustPolicy(ca_file=stranger.ca_file))
        with pytest.raises(ssl.SSLCertVerificationError):
            await session.connect()
        await session.close()


async def test_ca_mode_refuses_the_self_signed_certificate(
    server: PixmartServer, tmp_path: Path
) -> None:
    pair = issue_server_pair(tmp_path / "pki")
    session = Session(f"wss://127.0.0.1:{server.port}", TrustPolicy(ca_file=pair.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        await session.connect()
    await session.close()


# -- protocol versions and schemes ---------------------------------------------------------------


async def test_plain_websocket_urls_are_refused_by_the_session() -> None:
    with pytest.raises(ValueError, match="wss://"):
        Session("ws://127.0.0.1:8765", TrustPolicy(fingerprint=WRONG_PIN))
    with pytest.raises(ValueError):
        Session("http://127.0.0.1:8765", TrustPolicy(fingerprint=WRONG_PIN))
    with pytest.raises(ValueError, match="No host"):
        Session("wss://:8765", TrustPolicy(fingerprint=WRONG_PIN))


async def test_the_server_does_not_speak_plain_websocket(server: PixmartServer) -> None:
    with pytest.raises((InvalidHandshake, OSError, EOFError, TimeoutError)):
        async with connect(
            f"ws://127.0.0.1:{server.port}", open_timeout=5, proxy=None, compression=None
        ):
            pass


async def test_tls_1_2_is_refused(server: PixmartServer) -> None:
    old = insecure_tls13_context()
    old.minimum_version = ssl.TLSVersion.TLSv1_2
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await asyncio.open_connection("127.0.0.1", server.port, ssl=old)
    # The same client code with TLS 1.3 gets through (the refusal is about the version).
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=insecure_tls13_context()
    )
    ssl_object = writer.get_extra_info("ssl_object")
    assert ssl_object is not None and ssl_object.version() == "TLSv1.3"
    writer.close()
    await writer.wait_closed()
