"""Start-up through the real console scripts: listening at once, and fatal errors that say why.

Proves that ``pixmart-server serve`` ends promptly with status 1 and one line naming the cause
and the fix, and lets go of its data dir, for each way a start can be doomed: the data dir
locked by another server, the port taken, an unreadable certificate, a database that is not one
or is newer than this pixmart, and a model cache that cannot be written. ``pixmart-server
import`` and ``pixmart demo`` show the same line and exit non-zero. A start with the image model
answers its health check while the model still warms up.

The bounds on time here are generous (the machine is shared); the start-up figures themselves
are measured by ``tests/bench/bench_startup.py``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.vision.embedder import default_cache_dir
from tests.support.commerce import ServerProcess

BIN = Path(sys.executable).parent
#: Far above the ~0.5 s a failed start takes here, far below the model's half-minute build.
PROMPT_EXIT = 15.0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXMART_")}
    return {**env, **extra}


def _run(*args: str, timeout: float = PROMPT_EXIT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=_env(**env),
        timeout=timeout,
        check=False,
    )


def _serve(data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return _run("pixmart-server", "--data-dir", str(data_dir), "serve", "--port", "0", *options)


def assert_fatal(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit status 1, and exactly one error line that names the cause and (after ';') the fix."""
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("pixmart-server:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = errors[0]
    assert line.startswith("pixmart-server: error: "), line
    assert "; " in line, f"no fix named in {line!r}"
    for word in words:
        assert word in line, line
    return line


def assert_unlocked(data_dir: Path) -> None:
    """The failed server let go of the data dir: another process can take its lock."""
    fd = os.open(data_dir / "server.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server (no model) holding ``tmp_path / 'data'``."""
    import asyncio

    server = ServerProcess(tmp_path / "data")
    asyncio.run(server.start())
    try:
        yield server
    finally:
        server.stop()


def test_a_second_server_on_a_locked_data_dir_stops_at_once(
    running: ServerProcess, tmp_path: Path
) -> None:
    line = assert_fatal(_serve(running.data_dir, "--no-vision"), "another pixmart server")
    assert str(running.data_dir) in line


def test_import_into_a_served_data_dir_says_the_same(
    running: ServerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    result = _run(
        "pixmart-server", "--data-dir", str(running.data_dir), "import", str(folder),
        "--owner", "nobody", "--no-vision",
    )
    assert_fatal(result, "another pixmart server")


def test_a_taken_port_stops_the_start_and_frees_the_data_dir(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _run(
            "pixmart-server", "--data-dir", str(tmp_path / "data"), "serve", "--port", str(port),
            "--no-vision",
        )
    assert_fatal(result, f"cannot listen on 127.0.0.1:{port}", "--port")
    assert_unlocked(tmp_path / "data")


def test_an_unreadable_certificate_stops_the_start(tmp_path: Path) -> None:
    garbage = tmp_path / "cert.pem"
    garbage.write_text("not a certificate\n")
    result = _serve(tmp_path / "data", "--no-vision", "--cert", str(garbage), "--key", str(garbage))
    assert_fatal(result, "cannot use the certificate", "--cert")
    assert_unlocked(tmp_path / "data")

    missing = _serve(
        tmp_path / "data", "--no-vision", "--cert", str(tmp_path / "nope.pem"),
        "--key", str(tmp_path / "nope.pem"),
    )
    assert_fatal(missing, "No such file")


def test_a_file_that_is_no_database_stops_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "pixmart.sqlite3").write_bytes(b"this is not a database, just some bytes" * 100)
    assert_fatal(_serve(data_dir, "--no-vision"), "cannot open or migrate the database", "restore")
    assert_unlocked(data_dir)
    # Nothing was written over the operator's file.
    assert (data_dir / "pixmart.sqlite3").read_bytes().startswith(b"this is not a database")


def test_a_database_of_a_newer_pixmart_is_left_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "pixmart.sqlite3") as db:
        db.execute("PRAGMA user_version = 999")
    assert_fatal(_serve(data_dir, "--no-vision"), "newer pixmart", "upgrade")
    with sqlite3.connect(data_dir / "pixmart.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 999


def test_a_model_cache_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cache = default_cache_dir(data_dir)
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the model folder belongs")
    assert_fatal(_serve(data_dir), "image model cache", "--no-vision")
    assert_unlocked(data_dir)


def test_the_demo_shows_the_servers_reason_and_fails(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    (demo / "server").mkdir(parents=True)
    (demo / "server" / "pixmart.sqlite3").write_bytes(b"garbage" * 200)
    result = _run("pixmart", "demo", PIXMART_DEMO_DIR=str(demo))
    assert result.returncode != 0
    assert "cannot open or migrate the database" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_server_listens_and_answers_health_while_the_model_warms_up(tmp_path: Path) -> None:
    """A first start with the model: listening and healthy long before the model is built."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(BIN / "pixmart-server"), "--data-dir", str(tmp_path / "data"), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        listening_after = time.monotonic() - started
        assert "listening on wss://127.0.0.1:" in banner, banner
        port = int(banner.rsplit(":", 1)[1])
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", context=context, timeout=5
        ) as response:
            assert response.status == 200
            health = json.loads(response.read())
        assert health["status"] == "ok"
        assert health["database"] == "ok"
        # No model cache yet: the conversion takes far longer than the start did.
        assert health["vision"] == "warming", (health, listening_after)
        assert listening_after < PROMPT_EXIT
    finally:
        process.terminate()
        # Stopping mid-conversion kills the conversion instead of waiting for it.
        assert process.wait(timeout=PROMPT_EXIT) == 0
