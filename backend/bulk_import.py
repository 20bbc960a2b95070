"""Provides ``pixmart-server import DIR --owner USER``: bulk import on the server's machine.

The import runs the server in this process on a private loopback port and drives the scripting
client's ``upload`` command against it as a subprocess, with a session minted for the owner. So
an import goes through exactly the path every upload takes (validation, derivatives, embeddings,
near-duplicate checks) with the client's progress bar, resume and summary, and nothing is
written twice. The server must not be running on the same data dir (its lock says so).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from backend.config import ServerConfig
from backend.server import PixmartServer


def client_command() -> list[str]:
    """The ``pixmart`` client next to this interpreter (or its module, in a source tree)."""
    script = Path(sys.executable).with_name("pixmart")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tui.cli"]


async def import_folder(
    config: ServerConfig, folder: Path, owner: str, upload_options: list[str]
) -> int:
    """Import every picture under ``folder`` as items of ``owner``; return the exit status.

    Args:
        config: The server's configuration (its data dir is what gets imported into).
        folder: A folder (searched recursively) or a single picture.
        owner: The user the items belong to; the account must exist.
        upload_options: Passed to ``pixmart upload`` (``--price``, ``--tags``, ...).
    """
    server = PixmartServer(replace(config, host="127.0.0.1", port=0))
    await server.start()
    try:
        token, principal = await server.accounts.issue_session(owner)
        try:
            with tempfile.TemporaryDirectory(prefix="pixmart-import-") as client_dir:
                env = {**os.environ, "PIXMART_TOKEN": token, "PIXMART_CONFIG_DIR": client_dir}
                process = await asyncio.create_subprocess_exec(
                    *client_command(),
                    "--server",
                    f"wss://127.0.0.1:{server.port}",
                    "--trust",
                    server.fingerprint,
                    "upload",
                    str(folder),
                    *upload_options,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                )
                return await process.wait()
        finally:
            await server.accounts.logout(principal)
    finally:
        await server.stop()
