"""Provides :func:`measure_startup`: seconds from launching ``pixmart`` to a usable login screen.

The real command runs in a pseudo-terminal of 120×40 cells, as a person would start it, with a
fresh config dir (so nothing is remembered and no server is contacted). The probe answers the
terminal queries that graphics detection sends (device attributes, cell size in pixels) the way a
terminal without Sixel or Kitty graphics would, so their timeouts do not count. The login screen
counts as interactive once its form is on screen: Textual reads keys from then on.

Run ``python -m tests.ui.startup_probe`` for the median of a few runs.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from collections.abc import Sequence

#: Text that appears once the login form is drawn.
READY_MARKER = b"User name"
_DEVICE_ATTRIBUTES_QUERY = b"\x1b[c"
#: A VT220 with no Sixel (no ``4``): graphics detection settles on half-blocks at once.
_DEVICE_ATTRIBUTES_REPLY = b"\x1b[?62;22c"
_QUIT = b"\x11"  # ctrl+q


def _set_size(fd: int, rows: int, columns: int) -> None:
    # Pixel size too, so the cell size is known without asking the terminal.
    size = struct.pack("HHHH", rows, columns, columns * 10, rows * 20)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


def measure_startup(
    args: Sequence[str] = (),
    *,
    size: tuple[int, int] = (120, 40),
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
) -> float:
    """Launch ``pixmart`` in a pseudo-terminal and time it until the login form is drawn.

    Args:
        args: extra command-line arguments (e.g. ``["--server", url, "--trust", fp]``).
        size: terminal columns and rows.
        timeout: give up after this many seconds.
        env: extra environment variables.

    Returns:
        Seconds from the launch to the drawn login screen.

    Raises:
        TimeoutError: the login screen did not appear in time (the output seen is in the message).
    """
    columns, rows = size
    with tempfile.TemporaryDirectory(prefix="pixmart-probe-") as config:
        child_env = {
            **os.environ,
            "PIXMART_CONFIG_DIR": config,
            "TERM": "xterm-256color",
            "COLUMNS": str(columns),
            "LINES": str(rows),
            **(env or {}),
        }
        child_env.pop("PIXMART_SERVER", None)
        child_env.pop("TMUX", None)
        command = [
            sys.executable,
            "-c",
            "import sys; from tui.cli import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ]
        started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: become pixmart
            try:
                os.execve(sys.executable, command, child_env)
            finally:
                os._exit(127)
        try:
            _set_size(fd, rows, columns)
            return _wait_until_ready(fd, started, timeout)
        finally:
            _stop(pid, fd)


def _wait_until_ready(fd: int, started: float, timeout: float) -> float:
    seen = bytearray()
    deadline = started + timeout
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            tail = bytes(seen[-400:]).decode("utf-8", "replace")
            raise TimeoutError(f"no login screen within {timeout} s; last output: {tail!r}")
        readable, _, _ = select.select([fd], [], [], min(left, 0.05))
        if not readable:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child exited
            tail = bytes(seen[-400:]).decode("utf-8", "replace")
            raise TimeoutError(f"pixmart exited before its login screen: {tail!r}") from None
        if not chunk:
            continue
        previous = len(seen)
        seen += chunk
        # Look across the chunk boundary as well.
        window = bytes(seen[max(0, previous - 64) :])
        if _DEVICE_ATTRIBUTES_QUERY in window:
            os.write(fd, _DEVICE_ATTRIBUTES_REPLY)
        if READY_MARKER in window:
            return time.perf_counter() - started


def _stop(pid: int, fd: int) -> None:
    try:
        os.write(fd, _QUIT)
        for _ in range(100):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            # Keep draining so the child never blocks on a full terminal buffer.
            if select.select([fd], [], [], 0.02)[0]:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError, OSError):
        pass
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def main(runs: int = 5) -> None:
    """Print each run and the median."""
    times = [measure_startup() for _ in range(runs)]
    for number, seconds in enumerate(times, start=1):
        print(f"run {number}: {seconds:.3f} s")
    print(f"median: {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()


__all__ = ["READY_MARKER", "measure_startup"]
