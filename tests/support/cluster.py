"""Runs a development cluster on loopback: N pixmart-server instances behind haproxy.

``make cluster N=2`` runs ``python -m tests.support.cluster up 2``: it starts PostgreSQL (as
``make services`` does), N ``pixmart-server serve`` instances on free loopback ports, each with
its own data dir under ``.services/cluster/`` but one shared database and one shared
certificate, and haproxy in front; ``.services.env`` gets ``PIXMART_LB=wss://127.0.0.1:PORT``.
Idempotent: instances already running stay, missing ones start, extra ones stop, and haproxy is
reloaded with the new list. ``make cluster-down`` stops the instances and haproxy (PostgreSQL
stays: ``make services-down`` stops it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from backend import tls
from tests.support import services
from tests.support.haproxy import Haproxy
from tests.support.ports import kept_port

CLUSTER_DIR = services.STATE_DIR / "cluster"
#: Instances load the image model before they listen; that can take a while on first start.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0
LB_KEY = "PIXMART_LB"


def shared_certificate(base: Path = CLUSTER_DIR) -> tuple[Path, Path]:
    """The certificate and key every instance serves (made once), so clients pin one."""
    return tls.ensure_self_signed(base / "tls")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Instance:
    """One detached ``pixmart-server serve`` in ``base`` (its data dir, port, pid and log)."""

    base: Path

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    @property
    def port(self) -> int:
        """The instance's TLS port (chosen once, kept across restarts)."""
        return kept_port(self.base)

    def _pid(self) -> int | None:
        try:
            pid = int((self.base / "pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self._pid() is not None

    def up(self, settings: dict[str, str], cert: Path, key: Path, *, vision: bool) -> None:
        """Start the instance unless it runs, and wait until it listens.

        Args:
            settings: Environment for the server (``PIXMART_DATABASE``, and ``PIXMART_BLOBS``
                with its credentials when ``make services`` runs an object store).
        """
        if self.running():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        command = [
            str(Path(sys.executable).parent / "pixmart-server"),
            "--data-dir",
            str(self.data_dir),
            "serve",
            "--port",
            str(self.port),
            "--cert",
            str(cert),
            "--key",
            str(key),
        ]
        if not vision:
            command.append("--no-vision")
        # URLs with passwords go through the environment, not the command line: ps shows it.
        env = {**os.environ, **settings}
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives this command, like a daemon
            )
        (self.base / "pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT
        marker = f"listening on wss://127.0.0.1:{self.port}"
        while marker not in self.log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.down()
                raise RuntimeError(f"instance {self.base.name} did not start:\n{tail}")
            time.sleep(0.1)

    def down(self) -> None:
        """Stop the instance gracefully (SIGTERM), SIGKILL if it does not stop in time."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        (self.base / "pid").unlink(missing_ok=True)


def instances(base: Path = CLUSTER_DIR) -> list[Instance]:
    """The instances that have a folder in ``base``, in order."""
    folders = sorted(base.glob("instance*"), key=lambda p: int(p.name.removeprefix("instance")))
    return [Instance(folder) for folder in folders]


def balancer(base: Path = CLUSTER_DIR) -> Haproxy:
    """The cluster's haproxy."""
    return Haproxy(base / "haproxy")


def up(count: int, *, vision: bool = True, base: Path = CLUSTER_DIR) -> str:
    """Run ``count`` instances and haproxy in front of them; return the balancer's URL."""
    if count < 1:
        raise ValueError("a cluster has at least one instance")
    settings = services.read_env_file()
    if "PIXMART_DATABASE" not in settings:  # run without `make services` first
        settings["PIXMART_DATABASE"] = services.postgres().up()
        services.write_env_file({"PIXMART_DATABASE": settings["PIXMART_DATABASE"]})
    # Everything the services wrote (database, object store and its keys), not our own output.
    settings.pop(LB_KEY, None)
    cert, key = shared_certificate(base)
    wanted = [Instance(base / f"instance{n}") for n in range(count)]
    # One after the other: the first one migrates the database (under an advisory lock anyway).
    for instance in wanted:
        instance.up(settings, cert, key, vision=vision)
    for extra in instances(base)[count:]:
        extra.down()
    lb = balancer(base)
    url = lb.up([instance.port for instance in wanted])
    lb.wait_for_states({f"instance{n}": "UP" for n in range(count)})
    services.write_env_file({LB_KEY: url})
    return url


def down(base: Path = CLUSTER_DIR) -> None:
    """Stop haproxy and every instance; forget ``PIXMART_LB``."""
    balancer(base).down()
    for instance in instances(base):
        instance.down()
    if services.ENV_FILE.exists():
        services.write_env_file({}, remove=(LB_KEY,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    start = commands.add_parser("up", help="start (or resize) the cluster")
    start.add_argument("count", type=int, nargs="?", default=2, help="instances (default 2)")
    start.add_argument("--no-vision", action="store_true", help="instances without the model")
    commands.add_parser("down", help="stop the instances and haproxy")
    commands.add_parser("status", help="show what runs")
    args = parser.parse_args(argv)
    if args.action == "up":
        url = up(args.count, vision=not args.no_vision)
        cert, _ = shared_certificate()
        print(f"{args.count} instance(s) behind {url}; settings in {services.ENV_FILE.name}")
        print(f"certificate SHA-256 fingerprint: {tls.fingerprint_of_pem_file(cert)}")
    elif args.action == "down":
        down()
        print("cluster stopped")
    else:
        for instance in instances():
            state = "running" if instance.running() else "stopped"
            print(f"{instance.base.name}: {state} on 127.0.0.1:{instance.port}")
        lb = balancer()
        print(f"haproxy: {'running on ' + lb.url if lb.running() else 'stopped'}")
        if lb.running():
            print(lb.server_states())
    return 0


if __name__ == "__main__":
    sys.exit(main())
