"""The real ``pixmart`` scripting CLI against a real ``pixmart-server`` process.

Proves, with both programs run as subprocesses (the server on ``--port 0``, its port and
fingerprint read from what it prints), that ``account create``, ``login``, ``whoami`` and
``logout`` work end to end; that the server and the pin are remembered for later commands, or
taken from ``PIXMART_SERVER``/``PIXMART_TRUST``; that the token file is owner-only; and that every
failure (wrong password, unknown server without ``--trust``, fingerprint mismatch, missing
password, taken name, not logged in, server down) exits non-zero with a reason on stderr and no
traceback. Also proves that ``pixmart-server fingerprint`` prints the fingerprint the running
server announced (with ``--data-dir`` before or after the subcommand), that the server's key and
certificate files are mode 0600 in a data dir of mode 0700, and that SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend import tls
from protocol.client import Session
from protocol.trust import TrustPolicy

BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery"
WRONG_PIN = ":".join(["AB"] * 32)


@dataclass
class ServerProcess:
    """A running ``pixmart-server`` subprocess and what it printed on start."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    fingerprint: str

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXMART_")}
    env.update(extra)
    return env


def _read_announcement(process: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, str]:
    """The port and fingerprint the server prints on start (bounded wait)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    printed = ""
    deadline = time.monotonic() + timeout
    while True:
        port = re.search(r"listening on wss://[\d.]+:(\d+)\n", printed)
        fingerprint = re.search(r"fingerprint: ([0-9A-F:]{95})\n", printed)
        if port and fingerprint:
            return int(port.group(1)), fingerprint.group(1)
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise TimeoutError(f"pixmart-server did not announce its port; it printed {printed!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"pixmart-server exited early with status {process.wait()}")
        printed += chunk.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``pixmart-server --data-dir D serve --port 0 --no-vision`` for the whole module."""
    data_dir = tmp_path_factory.mktemp("cli-server") / "data"
    process = subprocess.Popen(
        [str(BIN / "pixmart-server"), "--data-dir", str(data_dir)]
        + ["serve", "--port", "0", "--no-vision"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        bufsize=0,
        env=_clean_env(),
    )
    try:
        port, fingerprint = _read_announcement(process)
        yield ServerProcess(process, data_dir, port, fingerprint)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, "pixmart-server did not stop cleanly on SIGTERM"


@dataclass
class Cli:
    """Runs ``pixmart`` with its own config dir, like one person's machine."""

    config_dir: Path

    def __call__(
        self, *args: str, password: str | None = PASSWORD, **env: str
    ) -> subprocess.CompletedProcess[str]:
        extra = {"PIXMART_CONFIG_DIR": str(self.config_dir), **env}
        if password is not None:
            extra["PIXMART_PASSWORD"] = password
        return subprocess.run(
            [str(BIN / "pixmart"), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=_clean_env(**extra),
            timeout=60,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "pixmart-config")


def assert_failed(result: subprocess.CompletedProcess[str], *reasons: str) -> None:
    """Non-zero exit, every reason on stderr, and no traceback."""
    assert result.returncode != 0, result
    assert result.stderr.startswith("pixmart: "), result.stderr
    for reason in reasons:
        assert reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- the happy path --------------------------------------------------------------------------------


def test_create_login_whoami_logout(server: ServerProcess, cli: Cli) -> None:
    pin = ("--server", server.url, "--trust", server.fingerprint)
    out = assert_ok(cli(*pin, "account", "create", "cli-alice"))
    assert "Created account cli-alice" in out

    out = assert_ok(cli(*pin, "login", "cli-alice"))
    assert f"Logged in as cli-alice on {server.url}" in out
    tokens = cli.config_dir / "tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert PASSWORD not in tokens.read_text()  # a token is kept, never the password

    # The server and its pin are remembered: no options needed any more.
    out = assert_ok(cli("whoami", password=None))
    assert out.strip() == f"cli-alice on {server.url}"
    known = (cli.config_dir / "known_servers.json").read_text()
    assert server.fingerprint in known

    out = assert_ok(cli("logout", password=None))
    assert "Logged out" in out
    assert_failed(cli("whoami", password=None), "Not logged in")


# -- failures ------------------------------------------------------------------------------------


def create_account(server: ServerProcess, username: str) -> None:
    """Create an account directly over the protocol (quicker than another CLI run)."""

    async def create() -> None:
        async with Session(server.url, TrustPolicy(fingerprint=server.fingerprint)) as session:
            await session.create_account(username, PASSWORD)

    asyncio.run(create())


def test_wrong_password_fails_with_a_reason(server: ServerProcess, cli: Cli) -> None:
    create_account(server, "cli-bob")
    # The server and the pin from the environment this time.
    env = {"PIXMART_SERVER": server.url, "PIXMART_TRUST": server.fingerprint}
    result = cli("login", "cli-bob", password="not the password", **env)
    assert_failed(result, "Wrong username or password")
    assert not (cli.config_dir / "tokens.json").exists()
    assert_ok(cli("login", "cli-bob", **env))  # the environment does work


def test_unknown_server_without_trust_fails(server: ServerProcess, cli: Cli) -> None:
    result = cli("--server", server.url, "account", "create", "cli-carol")
    assert_failed(result, "not a known server", server.fingerprint, "--trust")
    # Nothing was pinned behind the person's back.
    assert not (cli.config_dir / "known_servers.json").exists()


def test_fingerprint_mismatch_fails(server: ServerProcess, cli: Cli) -> None:
    result = cli("--server", server.url, "--trust", WRONG_PIN, "login", "cli-dave")
    assert_failed(result, "CHANGED", WRONG_PIN, server.fingerprint)


def test_other_failures_have_reasons_too(server: ServerProcess, cli: Cli) -> None:
    create_account(server, "cli-erin")
    pin = ("--server", server.url, "--trust", server.fingerprint)
    assert_failed(cli(*pin, "login", "cli-erin", password=None), "No password")
    assert_failed(cli(*pin, "account", "create", "CLI-ERIN"), "taken")


def test_server_down_fails_with_a_reason(cli: Cli) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("--server", f"wss://127.0.0.1:{port}", "--trust", WRONG_PIN, "whoami")
    assert_failed(result, "cannot reach the server")


# -- the server side -------------------------------------------------------------------------------


def test_fingerprint_command_matches_and_key_files_are_private(server: ServerProcess) -> None:
    for args in (
        ["fingerprint", "--data-dir", str(server.data_dir)],
        ["--data-dir", str(server.data_dir), "fingerprint"],
    ):
        result = subprocess.run(
            [str(BIN / "pixmart-server"), *args],
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == server.fingerprint
    cert = server.data_dir / tls.CERT_NAME
    key = server.data_dir / tls.KEY_NAME
    assert tls.fingerprint_of_pem_file(cert) == server.fingerprint
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
