"""``pixmart-server import DIR --owner USER``: bulk import through the real upload path.

Runs the real commands as subprocesses: the import lists every picture of a folder as the owner's
items (with price and tags), refuses an unknown owner, and refuses a data dir a running server
holds.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

from PIL import Image

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.catalogue_client import iter_items
from protocol.client import Session
from protocol.trust import TrustPolicy

SERVER = [str(Path(sys.executable).with_name("pixmart-server"))]


def _pictures(folder: Path, count: int) -> None:
    (folder / "nested").mkdir(parents=True)
    for index in range(count):
        out = io.BytesIO()
        Image.new("RGB", (40 + index, 30), (index * 40 % 256, 90, 160)).save(out, "JPEG")
        target = folder / ("nested" if index % 2 else ".") / f"red_bike-{index}.jpg"
        target.write_bytes(out.getvalue())
    (folder / "notes.txt").write_text("not a picture")


async def _run(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *SERVER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PIXMART_TF_VERBOSE": "0"},
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_import_lists_a_folder_as_the_owners_items(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    folder = tmp_path / "pictures"
    _pictures(folder, 4)
    data_dir = str(server_config.data_dir)
    # An account to import into, made through the server's own code path.
    server = PixmartServer(server_config)
    await server.start()
    await server.accounts.create_account("seller", "password123")
    await server.stop()

    database = ["--database", server_config.database] if server_config.database else []
    status, output = await _run(
        *database,
        "--data-dir",
        data_dir,
        "import",
        str(folder),
        "--owner",
        "seller",
        "--price",
        "12.50",
        "--tags",
        "bikes,red",
        "--no-vision",
    )
    assert status == 0, output

    server = PixmartServer(server_config)
    await server.start()
    try:
        session = Session(
            f"wss://127.0.0.1:{server.port}", TrustPolicy(fingerprint=server.fingerprint)
        )
        await session.connect()
        await session.login("seller", "password123")
        items = [card async for card in iter_items(session)]
        await session.close()
    finally:
        await server.stop()
    assert len(items) == 4
    assert {card.price_cents for card in items} == {1250}
    assert all(sorted(card.tags) == ["bikes", "red"] for card in items)
    assert all(card.title.startswith("Red bike") for card in items)


async def test_import_refuses_an_unknown_owner_and_a_busy_data_dir(
    server: PixmartServer, tmp_path: Path
) -> None:
    folder = tmp_path / "pictures"
    _pictures(folder, 1)
    status, output = await _run(
        "--data-dir",
        str(server.config.data_dir),
        "import",
        str(folder),
        "--owner",
        "x",
        "--no-vision",
    )
    assert status == 1
    assert "pixmart-server: error: another pixmart server is using the data dir" in output

    other = tmp_path / "other-data"
    status, output = await _run(
        "--data-dir", str(other), "import", str(folder), "--owner", "nobody", "--no-vision"
    )
    assert status == 1
    assert "No user named 'nobody'" in output
