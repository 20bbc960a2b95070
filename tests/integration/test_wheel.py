"""The built wheel, installed into throwaway venvs, works outside the checkout.

Proves that the wheel built from this tree ships the data files (ImageNet labels, starter tags,
the demo photographs and their catalogue, the TUI styles) and no tests; that a client-only
install (``pip install pixmart``) runs ``pixmart --help``, imports every client module, cannot
import TensorFlow, LiteRT, numpy or aiosqlite, and that ``pixmart-server`` and ``pixmart demo``
then refuse with one line naming ``pixmart[server]``; and that an install with the ``server``
extra, run from a folder outside the checkout with an empty home, starts a server whose image
model becomes ready, takes an account, an upload and a similar-image query (the upload ranked
first) through the installed ``pixmart`` CLI, lists the starter tags, and stops with status 0 on
SIGTERM. Last, a shipped data file deleted from that install makes the next start fail at once
with one line naming the file.

Every venv is made by the interpreter that made ``.venv``; the programs run with an empty home,
empty XDG dirs, no ``PIXMART_*`` variables and no ``PYTHONPATH``, in a temp folder, so nothing
of the source tree or the developer's own state can be what makes them work. pip itself keeps
the caller's environment (``make test`` passes ``PIP_CACHE_DIR`` through), so repeats are quick.

Run with ``-s`` to see the venv sizes and how long each step took.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Builds and installs the wheel and converts the model in the installed server: run first.
pytestmark = pytest.mark.long_running

ROOT = Path(__file__).resolve().parents[2]
#: The interpreter that made ``.venv`` (a venv's own python would nest venvs in venvs).
BASE_PYTHON = Path(getattr(sys, "_base_executable", "") or sys.executable)
#: The client's packages: a client-only install must import every module of them.
CLIENT_PACKAGES = ("protocol", "tui")
#: Modules of the ``server`` extra that a client-only install must not have.
SERVER_ONLY = ("tensorflow", "numpy", "aiosqlite", "ai_edge_litert")
PASSWORD = "wheel test password"
PHOTO = ROOT / "data" / "demo" / "chelsea-the-cat.jpg"
OTHER_PHOTO = ROOT / "data" / "demo" / "brick-wall-texture.jpg"
#: Bounds on time. The machine is shared and, on a fresh one, pip downloads TensorFlow.
BUILD_TIMEOUT = 300.0
INSTALL_TIMEOUT = 900.0
COMMAND_TIMEOUT = 60.0
ANNOUNCE_TIMEOUT = 60.0
#: The first start converts and calibrates the model (about 30 s here).
VISION_TIMEOUT = 240.0
#: Far above the second or two a doomed start takes, far below the model's build.
PROMPT_EXIT = 15.0
STOP_TIMEOUT = 30.0

#: Folders of the checkout that are not part of the source (copying them would be slow, and
#: a stale ``build/`` could put files into the wheel that the tree no longer has).
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.pyc",
    "node_modules", "snapshot_report.html", ".services", ".services.env",
)


#: When the module started (reset by ``_module_clock``), for the timings ``_log`` prints.
_CLOCK = time.monotonic()


def _log(message: str) -> None:
    """A line for the person reading ``pytest -s`` (the sizes go into the release note)."""
    print(f"[wheel {time.monotonic() - _CLOCK:5.0f} s] {message}", flush=True)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _check(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{what} failed with status {result.returncode}:\n"
        f"{_tail(result.stdout)}\n{_tail(result.stderr)}"
    )
    return result


def _pip_env() -> dict[str, str]:
    """The caller's environment for pip (its cache, index and certificate settings), minus
    what would point pip at the dev venv instead of the throwaway one."""
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(name, None)
    return env


def _dir_size(path: Path) -> int:
    """Bytes on disk under ``path``, like ``du -s`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, names in os.walk(path):
        for name in [*names, *dirs]:
            info = os.lstat(os.path.join(folder, name))
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


@dataclass(frozen=True)
class Venv:
    """A throwaway venv with the wheel installed, and a home and a folder to run it in."""

    path: Path
    home: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a person with a fresh account on this machine.

        ``PIXMART_*`` would pick a server, a config dir or a data dir; ``PYTHONPATH`` could put
        the checkout on the path; the XDG dirs would find the developer's pins, tokens and
        cached model. Everything else (locale, ``PATH`` for helper tools) stays.
        """
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIXMART_", "XDG_")) and k not in _NOT_INHERITED
        }
        env["HOME"] = str(self.home)
        for name, sub in _XDG.items():
            env[name] = str(self.home / sub)
        env.update(extra)
        return env

    def run(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a program of this venv from the folder outside the checkout."""
        return subprocess.run(
            [self.bin(args[0]), *args[1:]],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env=self.env(**(env or {})),
            timeout=timeout,
            check=False,
        )

    def site_packages(self) -> Path:
        """Where pip put pixmart, as the venv's own python says."""
        result = _check(
            self.run("python", "-c", "import pixmart_data; print(pixmart_data.__file__)"),
            "finding pixmart_data",
        )
        return Path(result.stdout.strip()).parent.parent


_NOT_INHERITED = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"})
_XDG = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_CACHE_HOME": ".cache",
    "XDG_STATE_HOME": ".local/state",
}


class Install:
    """``python -m venv`` and ``pip install WHEEL[extras]``, as a person would, with pip left
    running in the background so the long server install overlaps the client tests."""

    def __init__(self, root: Path, wheel: Path, extras: str = "") -> None:
        self.venv = Venv(root / "venv", root / "home", root / "work")
        # Run from inside the checkout, ``import tui`` could find the source instead.
        assert not root.resolve().is_relative_to(ROOT), f"{root} is inside the checkout"
        self.venv.home.mkdir()
        self.venv.workdir.mkdir()
        self.what = f"pip install {wheel.name}{extras}"
        self.log = root / "pip.log"
        self.started = time.monotonic()
        _check(
            subprocess.run(
                [str(BASE_PYTHON), "-m", "venv", str(self.venv.path)],
                capture_output=True, text=True, env=_pip_env(), timeout=COMMAND_TIMEOUT,
                check=False,
            ),
            "python -m venv",
        )
        # --no-compile: pip would byte-compile all of TensorFlow, most of which the server
        # never imports; Python compiles what is imported on first use anyway.
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [self.venv.bin("python"), "-m", "pip", "install", "--quiet", "--no-compile",
                 f"{wheel}{extras}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root,
                env=_pip_env(),
            )

    def wait(self) -> Venv:
        """The venv, once pip has succeeded (bounded by ``INSTALL_TIMEOUT`` from the start)."""
        remaining = INSTALL_TIMEOUT - (time.monotonic() - self.started)
        try:
            code = self.process.wait(timeout=max(remaining, 1.0))
        except subprocess.TimeoutExpired:
            self.cancel()
            raise AssertionError(f"{self.what} took over {INSTALL_TIMEOUT:.0f} s") from None
        assert code == 0, f"{self.what} failed with status {code}:\n{_read(self.log)}"
        _log(f"{self.what} done, {time.monotonic() - self.started:.0f} s after it began")
        return self.venv

    def cancel(self) -> None:
        """Stop pip if it still runs (a run that selected no test needing it)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


# -- the wheel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _module_clock() -> Iterator[None]:
    global _CLOCK
    _CLOCK = time.monotonic()
    yield
    _log("the whole module is done")


@dataclass(frozen=True)
class Built:
    """The wheel and the copy of the source tree it was built from."""

    wheel: Path
    source: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The wheel, built once from a copy of the source tree (not in it: a build writes
    ``build/`` and ``*.egg-info`` there, and other engineers may be changing files meanwhile,
    so the contents are checked against the very copy that was built)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE, symlinks=True)
    started = time.monotonic()
    _check(
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
             str(root / "dist"), str(source)],
            capture_output=True, text=True, cwd=root, env=_pip_env(), timeout=BUILD_TIMEOUT,
            check=False,
        ),
        "pip wheel",
    )
    (wheel,) = (root / "dist").glob("pixmart-*.whl")
    _log(f"built {wheel.name} ({_mib(wheel.stat().st_size)}) in {time.monotonic() - started:.0f} s")
    return Built(wheel, source)


@pytest.fixture(scope="module")
def wheel(built: Built) -> Path:
    return built.wheel


def test_the_wheel_ships_the_data_files_and_no_tests(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
        # pixmart-VERSION.dist-info, named as the wheel is.
        dist_info = "-".join(built.wheel.name.split("-")[:2]) + ".dist-info"
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    source = built.source
    demo_photos = {path.name for path in (source / "data" / "demo").glob("*.jpg")}
    assert len(demo_photos) >= 30
    expected = {
        "pixmart_data/__init__.py",
        "pixmart_data/imagenet_labels.txt",
        "pixmart_data/imagenet_hypernyms.txt",
        "pixmart_data/starter_tags.txt",
        "pixmart_data/vision_embedding_mean.txt",
        "pixmart_data/vision_whitening.npy",
        "pixmart_data/demo/catalogue.json",
        *(f"pixmart_data/demo/{name}" for name in demo_photos),
        *(f"tui/styles/{path.name}" for path in (source / "tui" / "styles").glob("*.tcss")),
    }
    assert any(name.endswith(".tcss") for name in expected)
    assert not expected - names, sorted(expected - names)
    # Every module of the tree is in the wheel (pyproject lists packages by hand).
    for package in ("protocol", "backend", "tui"):
        for module in (source / package).rglob("*.py"):
            assert module.relative_to(source).as_posix() in names, module
    assert not any(name.startswith("tests/") for name in names)
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"protocol", "backend", "tui", "pixmart_data", dist_info}, tops
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "pixmart = tui.cli:main" in entry_points
    assert "pixmart-server = backend.cli:main" in entry_points


# -- client only -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_venv(
    wheel: Path, server_install: Install, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Venv]:
    # server_install is asked for first so that its pip, the long one, runs while this one
    # installs and the client tests run.
    root = tmp_path_factory.mktemp("client-only")
    install = Install(root, wheel)
    try:
        yield install.wait()
    finally:
        install.cancel()
        shutil.rmtree(root, ignore_errors=True)


def test_the_client_only_install_helps_and_imports_no_server_library(client_venv: Venv) -> None:
    _log(f"client-only venv: {_mib(_dir_size(client_venv.path))}")
    out = _check(client_venv.run("pixmart", "--help"), "pixmart --help").stdout
    assert "usage: pixmart" in out
    for command in ("upload", "browse", "similar", "demo"):
        assert command in out

    for module in SERVER_ONLY:
        result = client_venv.run("python", "-c", f"import {module}")
        assert result.returncode != 0, f"{module} is importable in a client-only install"
        assert "ModuleNotFoundError" in result.stderr, result.stderr

    # Every client module imports with the client's dependencies alone, from the venv (not the
    # checkout), and pulls in no module of the server.
    probe = (
        "import importlib, json, pkgutil, sys\n"
        f"for top in {CLIENT_PACKAGES!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "import pixmart_data\n"
        "print(json.dumps({'files': [sys.modules[m].__file__ for m in"
        f" ({', '.join(repr(p) for p in CLIENT_PACKAGES)}, 'pixmart_data')],"
        " 'backend': sorted(m for m in sys.modules if m.split('.')[0] == 'backend')}))\n"
    )
    _log("no server library importable")
    imported = _check(client_venv.run("python", "-c", probe), "importing the client")
    found = json.loads(imported.stdout)
    _log("every client module imported")
    for file in found["files"]:
        assert Path(file).is_relative_to(client_venv.path), file
    assert found["backend"] == []


def test_the_client_only_install_refuses_to_serve_in_one_line(client_venv: Venv) -> None:
    result = client_venv.run("pixmart-server", "serve", "--port", "0", timeout=PROMPT_EXIT)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pixmart-server: error: "), lines
    assert "pixmart[server]" in lines[0], lines
    _log(lines[0])

    demo = client_venv.run("pixmart", "demo")
    assert demo.returncode != 0, demo
    assert "pixmart[server]" in demo.stderr, demo.stderr
    assert "Traceback" not in demo.stderr, demo.stderr


# -- with the server extra ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """The install with the server extra, begun as soon as the wheel exists (see client_venv)."""
    root = tmp_path_factory.mktemp("with-server")
    install = Install(root, wheel, "[server]")
    try:
        yield install
    finally:
        install.cancel()
        started = time.monotonic()
        shutil.rmtree(root, ignore_errors=True)
        _log(f"server venv deleted in {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def server_venv(server_install: Install) -> Venv:
    return server_install.wait()


@dataclass(frozen=True)
class Announced:
    """What a starting server printed about itself."""

    url: str
    port: int
    fingerprint: str


def _read_announcement(process: subprocess.Popen[bytes], log: Path) -> Announced:
    """The address and fingerprint the server prints once it listens (bounded wait)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    printed = ""
    deadline = time.monotonic() + ANNOUNCE_TIMEOUT
    while True:
        url = re.search(r"listening on (wss://[\d.]+:(\d+))\n", printed)
        fingerprint = re.search(r"fingerprint: ([0-9A-F:]{95})\n", printed)
        if url and fingerprint:
            return Announced(url.group(1), int(url.group(2)), fingerprint.group(1))
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise TimeoutError(f"no announcement; printed {printed!r}; log:\n{_read(log)}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(
                f"pixmart-server exited with status {process.wait()}; log:\n{_read(log)}"
            )
        printed += chunk.decode()


def _read(path: Path) -> str:
    return _tail(path.read_text("utf-8", errors="replace")) if path.exists() else ""


def _health(port: int) -> dict[str, object]:
    # The certificate is self-signed: this probe checks readiness, not the server's identity.
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(
        f"https://127.0.0.1:{port}/healthz", context=context, timeout=5
    ) as response:
        body: dict[str, object] = json.loads(response.read())
    return body


def _wait_for_vision(process: subprocess.Popen[bytes], port: int, log: Path) -> float:
    """Seconds until ``/healthz`` says the model is ready; fails at once if it failed."""
    started = time.monotonic()
    health: dict[str, object] = {}
    while time.monotonic() - started < VISION_TIMEOUT:
        assert process.poll() is None, f"the server exited; log:\n{_read(log)}"
        try:
            health = _health(port)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            # 503 while warming is still an answer; the body says why.
            body = getattr(exc, "read", None)
            health = json.loads(body()) if callable(body) else {"error": str(exc)}
        if health.get("vision") == "ready":
            return time.monotonic() - started
        assert health.get("vision") != "failed", f"{health}; log:\n{_read(log)}"
        time.sleep(1.0)
    raise AssertionError(f"the model was not ready in {VISION_TIMEOUT:.0f} s: {health}")


def _starter_tags() -> set[str]:
    """The shipped starter tags, read as the server reads them (comments and blanks skipped)."""
    lines = (ROOT / "data" / "starter_tags.txt").read_text("utf-8").splitlines()
    return {text for line in lines if (text := line.split("#", 1)[0].strip().lower())}


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.timeout(INSTALL_TIMEOUT + VISION_TIMEOUT + 300)
def test_the_server_install_serves_uploads_and_similar_images(
    server_venv: Venv, tmp_path: Path
) -> None:
    _log(f"venv with the server extra: {_mib(_dir_size(server_venv.path))}")
    data_dir = tmp_path / "server-data"
    log = tmp_path / "server.log"
    started = time.monotonic()
    with open(log, "wb") as log_stream:
        process = subprocess.Popen(
            [server_venv.bin("pixmart-server"), "--data-dir", str(data_dir),
             "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log_stream,  # a file, not a pipe nobody reads: TensorFlow talks a lot
            stdin=subprocess.DEVNULL,
            cwd=server_venv.workdir,
            env=server_venv.env(),
        )
    try:
        server = _read_announcement(process, log)
        _log(f"listening after {time.monotonic() - started:.1f} s")
        pin = ("--server", server.url, "--trust", server.fingerprint)
        cli_env = {"PIXMART_PASSWORD": PASSWORD}
        # Accounts do not need the model: made while it warms up.
        created = server_venv.run("pixmart", *pin, "account", "create", "wheel-alice", env=cli_env)
        assert "Created account wheel-alice" in _check(created, "account create").stdout
        _check(server_venv.run("pixmart", *pin, "login", "wheel-alice", env=cli_env), "login")
        _log("account made, logged in")

        warm = _wait_for_vision(process, server.port, log)
        _log(f"model ready {warm:.0f} s later (first start: converted into the data dir)")

        # The pictures come from a folder of the person's own, not from the checkout; a second,
        # unlike one makes "the same picture ranks first" mean something.
        pictures = server_venv.workdir / "pictures"
        pictures.mkdir()
        for source in (PHOTO, OTHER_PHOTO):
            shutil.copyfile(source, pictures / source.name)
        photo = pictures / PHOTO.name
        # Later commands find the server, the pin and the token in the fresh home's config dir.
        upload = _check(
            server_venv.run(
                "pixmart", "upload", str(photo), str(pictures / OTHER_PHOTO.name),
                "--price", "5", "--stock", "1", "--tags", "wheel-test", "--json",
            ),
            "upload",
        )
        outcomes = {Path(str(line["path"])).name: line for line in _json_lines(upload.stdout)}
        assert {line["outcome"] for line in outcomes.values()} == {"uploaded"}, outcomes
        item_id = outcomes[PHOTO.name]["item_id"]
        _log("uploaded")

        similar = _json_lines(
            _check(server_venv.run("pixmart", "similar", str(photo), "--json"), "similar").stdout
        )
        assert [card["id"] for card in similar][:1] == [item_id], similar
        assert len(similar) == 2, similar
        _log(f"similar done: scores {[card.get('score') for card in similar]}")

        tags = _json_lines(
            _check(server_venv.run("pixmart", "tags", "--limit", "1000", "--json"), "tags").stdout
        )
        names = {str(tag["name"]) for tag in tags}
        starter = _starter_tags()
        assert len(starter) >= 10
        assert not starter - names, sorted(starter - names)
        assert {"name": "wheel-test", "count": 2} in tags
        _log("tags done")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            if process.stdout is not None:
                process.stdout.close()
    _log("server stopped")
    assert code == 0, f"pixmart-server did not stop cleanly on SIGTERM; log:\n{_read(log)}"


@pytest.mark.timeout(INSTALL_TIMEOUT + 120)  # run alone, it waits for the install itself
def test_a_missing_shipped_file_stops_the_server_at_once(
    server_venv: Venv, tmp_path: Path
) -> None:
    """Runs last in this module: it breaks the server venv on purpose."""
    starter_tags = server_venv.site_packages() / "pixmart_data" / "starter_tags.txt"
    assert starter_tags.is_file()
    starter_tags.unlink()
    started = time.monotonic()
    result = server_venv.run(
        "pixmart-server", "--data-dir", str(tmp_path / "data"), "serve", "--port", "0",
        timeout=PROMPT_EXIT,
    )
    _log(f"the start without starter_tags.txt ended in {time.monotonic() - started:.1f} s")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("pixmart-server:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("pixmart-server: error: "), errors
    assert str(starter_tags) in errors[0], errors
    assert "pip install" in errors[0], errors  # and the fix
    _log(errors[0])
