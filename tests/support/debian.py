"""Provides :func:`ensure_program`: a program the tests need, installed from Debian when missing.

A fresh machine passes the tests without a manual set-up step: a tool a test needs (haproxy,
Xvfb, xterm, kitty) is installed with ``apt-get`` the first time it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

#: Where Debian puts programs; not on every user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


def find_program(program: str) -> str | None:
    """The path of ``program``, or ``None`` when it is not installed."""
    return shutil.which(program, path=SEARCH_PATH)


def ensure_program(program: str, package: str | None = None) -> str:
    """The path of ``program``, installing the Debian ``package`` (default: the program's name)
    first when it is missing.

    Raises:
        RuntimeError: the program is missing and cannot be installed here (no apt, not root, or
            apt failed); the message says what to do.
    """
    package = package or program
    found = find_program(program)
    if found is not None:
        return found
    apt = shutil.which("apt-get", path=SEARCH_PATH)
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(
            f"{program} is not installed and cannot be installed here (needs apt-get as root): "
            f"install the {package} package (Debian: apt-get install {package})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", package]
    result = subprocess.run(install, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([apt, "update"], capture_output=True, text=True, env=env)
        result = subprocess.run(install, capture_output=True, text=True, env=env)
    found = find_program(program)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"apt-get could not install {package}:\n{result.stderr[-2000:]}")
    return found


__all__ = ["SEARCH_PATH", "ensure_program", "find_program"]
