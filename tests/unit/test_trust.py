"""Unit tests of server trust: fingerprints, the known-servers file and the trust decisions.

Proves that fingerprints are normalised from any spelling and anything that is not a SHA-256
fingerprint is refused; that the known-servers file is created with mode 0600, written atomically,
survives corruption by reading as empty, and keeps other servers' pins; that the mismatch and
unknown-server errors name the server and the fingerprints; and that :class:`TrustPolicy` decides
as documented: explicit pin first (and saves it), then the known-servers file, then the first-use
decider, else refuse; and that its TLS context allows TLS 1.3 only.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import stat
from pathlib import Path

import pytest

from protocol.trust import (
    FingerprintMismatch,
    KnownServers,
    TrustPolicy,
    UnknownServer,
    fingerprint_of_der,
    normalise_fingerprint,
)
from tests.support.certs import issue_server_pair

A = ":".join(["AA"] * 32)
B = ":".join(["0B"] * 32)
SERVER = "shop.example:8765"


# -- fingerprints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        A,
        A.lower(),
        A.replace(":", ""),
        A.replace(":", " "),
        A.replace(":", "-"),
        f"  {A}\n",
        A.replace(":", "").lower(),
    ],
)
def test_any_spelling_normalises_to_colon_separated_upper_case(spelling: str) -> None:
    assert normalise_fingerprint(spelling) == A


@pytest.mark.parametrize(
    "text", ["", "AA:BB", A + ":CC", A[:-1], "zz" * 32, "SHA256:" + "G" * 64, "🙂" * 64]
)
def test_anything_else_is_not_a_fingerprint(text: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        normalise_fingerprint(text)


def test_fingerprint_of_der_is_the_sha256_of_the_certificate() -> None:
    der = b"not really a certificate, but bytes all the same"
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = fingerprint_of_der(der)
    assert fingerprint.replace(":", "") == digest
    assert len(fingerprint) == 95 and fingerprint.count(":") == 31
    assert normalise_fingerprint(fingerprint) == fingerprint


# -- the known-servers file ----------------------------------------------------------------------


def test_pin_creates_the_file_owner_only(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "new" / "dir" / "known_servers.json")
    assert known.get(SERVER) is None
    known.pin(SERVER, A.lower())
    assert known.get(SERVER) == A  # stored normalised
    assert stat.S_IMODE(known.path.stat().st_mode) == 0o600
    assert json.loads(known.path.read_text("utf-8")) == {SERVER: A}
    assert list(known.path.parent.iterdir()) == [known.path]  # no temporary file left behind


def test_pins_of_other_servers_are_kept(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")
    known.pin(SERVER, A)
    known.pin("other.example:443", B)
    known.pin(SERVER, B)  # re-pinning replaces only this server's entry
    assert known.get(SERVER) == B
    assert known.get("other.example:443") == B
    assert KnownServers(known.path).get(SERVER) == B  # read back from disk


def test_pin_tightens_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "known.json"
    path.write_text("{}", "utf-8")
    path.chmod(0o644)
    KnownServers(path).pin(SERVER, A)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '"text"', "{", "\x00\xff"])
def test_a_damaged_file_reads_as_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "known.json"
    path.write_text(content, "utf-8", errors="surrogateescape")
    known = KnownServers(path)
    assert known.get(SERVER) is None
    known.pin(SERVER, A)  # and can be written again
    assert known.get(SERVER) == A


def test_pin_refuses_what_is_not_a_fingerprint(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")
    with pytest.raises(ValueError):
        known.pin(SERVER, "AA:BB")
    assert not known.path.exists()


# -- error messages ------------------------------------------------------------------------------


def test_mismatch_message_shows_both_fingerprints() -> None:
    error = FingerprintMismatch(SERVER, pinned=A, presented=B)
    text = str(error)
    assert SERVER in text and "CHANGED" in text
    assert f"pinned:    {A}" in text
    assert f"presented: {B}" in text
    assert "Nothing was sent" in text
    assert (error.server, error.pinned, error.presented) == (SERVER, A, B)


def test_unknown_server_message_shows_the_fingerprint_to_check() -> None:
    error = UnknownServer(SERVER, presented=B)
    assert SERVER in str(error) and B in str(error) and "--trust" in str(error)


# -- decisions -----------------------------------------------------------------------------------


async def test_explicit_pin_matches_in_any_spelling_and_is_saved(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")
    policy = TrustPolicy(fingerprint=A.replace(":", "").lower(), known=known)
    await policy.check(SERVER, A)
    assert known.get(SERVER) == A


async def test_explicit_pin_mismatch_is_refused_and_nothing_saved(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")
    with pytest.raises(FingerprintMismatch) as caught:
        await TrustPolicy(fingerprint=A, known=known).check(SERVER, B)
    assert (caught.value.pinned, caught.value.presented) == (A, B)
    assert not known.path.exists()


async def test_explicit_pin_replaces_an_outdated_known_pin(tmp_path: Path) -> None:
    """``--trust NEW`` is how a person accepts a reinstalled server's new certificate."""
    known = KnownServers(tmp_path / "known.json")
    known.pin(SERVER, A)
    await TrustPolicy(fingerprint=B, known=known).check(SERVER, B)
    assert known.get(SERVER) == B


async def test_known_pin_is_enforced(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")
    known.pin(SERVER, A)
    await TrustPolicy(known=known).check(SERVER, A)
    with pytest.raises(FingerprintMismatch):
        await TrustPolicy(known=known).check(SERVER, B)
    # A decider is not consulted about a pinned server that changed.
    asked: list[str] = []

    async def yes(server: str, fingerprint: str) -> bool:
        asked.append(fingerprint)
        return True

    with pytest.raises(FingerprintMismatch):
        await TrustPolicy(known=known, on_first_use=yes).check(SERVER, B)
    assert asked == []
    assert known.get(SERVER) == A


async def test_first_use_without_decider_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownServer):
        await TrustPolicy(known=KnownServers(tmp_path / "known.json")).check(SERVER, A)
    with pytest.raises(UnknownServer):
        await TrustPolicy().check(SERVER, A)


async def test_first_use_decider_accepting_pins(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")
    asked: list[tuple[str, str]] = []

    async def yes(server: str, fingerprint: str) -> bool:
        asked.append((server, fingerprint))
        return True

    policy = TrustPolicy(known=known, on_first_use=yes)
    await policy.check(SERVER, A)
    assert asked == [(SERVER, A)]
    assert known.get(SERVER) == A
    assert policy.fingerprint == A  # later reconnects of this policy need no question
    await policy.check(SERVER, A)
    assert len(asked) == 1


async def test_first_use_decider_accepting_without_a_file_pins_in_memory() -> None:
    async def yes(server: str, fingerprint: str) -> bool:
        return True

    policy = TrustPolicy(on_first_use=yes)
    await policy.check(SERVER, A)
    with pytest.raises(FingerprintMismatch):
        await policy.check(SERVER, B)


async def test_first_use_decider_refusing(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known.json")

    async def no(server: str, fingerprint: str) -> bool:
        return False

    with pytest.raises(UnknownServer):
        await TrustPolicy(known=known, on_first_use=no).check(SERVER, A)
    assert known.get(SERVER) is None


async def test_ca_mode_leaves_the_decision_to_tls(tmp_path: Path) -> None:
    await TrustPolicy(ca_file=tmp_path / "ca.pem").check(SERVER, B)


def test_pinning_context_is_tls13_only_without_chain_checks() -> None:
    context = TrustPolicy(fingerprint=A).ssl_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname


def test_ca_context_verifies_chain_and_host_name(tmp_path: Path) -> None:
    pair = issue_server_pair(tmp_path)
    context = TrustPolicy(ca_file=pair.ca_file).ssl_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert any("pixmart test CA" in str(ca.get("subject")) for ca in context.get_ca_certs())
