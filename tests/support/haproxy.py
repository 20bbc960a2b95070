"""Runs haproxy on loopback in front of pixmart-server instances: the cluster's one address.

haproxy passes TLS through (TCP mode): every instance serves the same certificate, so clients
pin one fingerprint whichever instance answers. It checks each instance's ``/healthz`` over
HTTPS, keeps WebSocket tunnels open for hours, sends new connections to the instance with the
fewest, and re-dispatches a connection an instance refuses (a dead one) to another at once,
before its health check has even noticed.

haproxy comes from the Debian package; :func:`ensure_haproxy` installs it with apt when missing.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.debian import ensure_program, find_program
from tests.support.ports import kept_port

START_TIMEOUT = 10.0
#: How often haproxy polls each instance's ``/healthz``, and how many misses mark it down.
CHECK_INTERVAL_MS = 1000
CHECK_FALL = 2


def haproxy_program() -> str | None:
    """The path of the ``haproxy`` program, or ``None`` when it is not installed."""
    return find_program("haproxy")


def ensure_haproxy() -> str:
    """The path of ``haproxy``, installing the Debian package first when it is missing.

    Raises:
        RuntimeError: haproxy is missing and cannot be installed here; the message says what
            to do.
    """
    return ensure_program("haproxy")


def _unprivileged_user() -> str | None:
    """The user haproxy drops to after binding when started as root (Debian's ``haproxy``)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("haproxy")
    except KeyError:
        return None
    return "haproxy"


def render_config(
    port: int, backends: Sequence[int], admin_socket: Path, user: str | None = None
) -> str:
    """The haproxy configuration: one loopback frontend on ``port``, one server per backend port.

    Args:
        port: The port clients connect to.
        backends: The TLS ports of the pixmart-server instances on 127.0.0.1.
        admin_socket: Where haproxy's runtime API listens (server states, for tests and tools).
        user: The user to run as once the sockets are open (``None``: stay who started it).
    """
    drop = f"    user {user}\n    group {user}\n" if user is not None else ""
    servers = "".join(
        f"    server instance{n} 127.0.0.1:{backend}\n" for n, backend in enumerate(backends)
    )
    return f"""\
# Written by tests/support/haproxy.py; regenerated whenever the instances change.
global
    # Each connection holds two sockets; keep within a default 20000-descriptor limit.
    maxconn 5000
    stats socket {admin_socket} mode 600 level admin
{drop}    # No logging: haproxy would log to syslog, which this machine may not run.

defaults
    mode tcp
    option dontlognull
    timeout connect 2s
    # WebSockets stay open for hours; the instances ping idle ones themselves.
    timeout client 2h
    timeout server 2h
    timeout tunnel 2h
    timeout client-fin 10s
    timeout check 2s
    # A connection refused by a dead instance goes to another one at once.
    retries 2
    option redispatch 1

frontend pixmart
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance leastconn
    # TLS passes through untouched; only the health checks speak TLS themselves (pixmart
    # serves TLS 1.3 only, on a certificate the clients pin, so haproxy does not verify it).
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check check-ssl verify none inter {CHECK_INTERVAL_MS}ms fastinter 250ms \
fall {CHECK_FALL} rise 1 on-marked-down shutdown-sessions
{servers}"""


@dataclass
class Haproxy:
    """One haproxy in ``base`` listening on 127.0.0.1 only, in front of loopback instances."""

    base: Path

    @property
    def config_path(self) -> Path:
        return self.base / "haproxy.cfg"

    @property
    def pid_path(self) -> Path:
        return self.base / "haproxy.pid"

    @property
    def admin_socket(self) -> Path:
        return self.base / "admin.sock"

    @property
    def port(self) -> int:
        """The port clients connect to (chosen once, kept across restarts)."""
        return kept_port(self.base)

    @property
    def url(self) -> str:
        """The ``wss://`` address clients use."""
        return f"wss://127.0.0.1:{self.port}"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def running(self) -> bool:
        return self._pid() is not None

    def up(self, backends: Sequence[int]) -> str:
        """Start haproxy in front of ``backends``, or reload it with them; return its URL.

        A reload hands the listening socket to a new haproxy (``-sf``): connections already
        open stay on the old one until they close, new ones see the new list.
        """
        program = ensure_haproxy()
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        text = render_config(self.port, backends, self.admin_socket, _unprivileged_user())
        old = self._pid()
        if old is not None and self.config_path.exists() and self.config_path.read_text() == text:
            return self.url  # running with these instances already
        self.config_path.write_text(text)
        check = subprocess.run(
            [program, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stderr}")
        command = [program, "-D", "-f", str(self.config_path), "-p", str(self.pid_path)]
        if old is not None:
            command += ["-sf", str(old)]
        else:
            self.pid_path.unlink(missing_ok=True)
        started = subprocess.run(command, capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"haproxy did not start:\n{started.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        while (pid := self._pid()) is None or pid == old:
            if time.monotonic() > deadline:
                raise RuntimeError("haproxy did not write its pid file")
            time.sleep(0.02)
        return self.url

    def down(self) -> None:
        """Stop haproxy (open connections are cut)."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + START_TIMEOUT
            while self._pid() is not None and time.monotonic() < deadline:
                time.sleep(0.02)
        self.pid_path.unlink(missing_ok=True)

    def _instance_stats(self) -> list[dict[str, str]]:
        """haproxy's statistics row of each instance (``show stat``, CSV)."""
        lines = self._admin("show stat").splitlines()
        if not lines:
            return []
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]
        return [
            row
            for row in rows
            if row.get("pxname") == "instances" and row.get("svname", "").startswith("instance")
        ]

    def server_states(self) -> dict[str, str]:
        """Each instance's state as haproxy's health checks see it (``UP``, ``DOWN``, ...)."""
        return {row["svname"]: row.get("status", "") for row in self._instance_stats()}

    def current_sessions(self) -> dict[str, int]:
        """How many client connections haproxy holds open to each instance."""
        return {row["svname"]: int(row.get("scur") or 0) for row in self._instance_stats()}

    def _admin(self, command: str) -> str:
        """Send one command to haproxy's runtime API and return its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def wait_for_states(self, wanted: dict[str, str], timeout: float = 15.0) -> None:
        """Wait until every server named in ``wanted`` has its state (e.g. ``UP``)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.server_states()
            if all(states.get(name, "").startswith(state) for name, state in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy sees {states}, waited for {wanted}")
            time.sleep(0.05)
