"""The scripting CLI against a real server: upload folders, browse, item, edit, delete."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from backend.server import PixmartServer
from protocol.listing_fields import title_from_filename
from tests.support.catalogue import jpeg, png, stored, write
from tui import cli


class Cli:
    """Runs ``pixmart`` in a thread (it has its own event loop) against one server."""

    def __init__(self, server: PixmartServer, capsys: pytest.CaptureFixture[str]) -> None:
        self._options = [
            "--server",
            f"wss://127.0.0.1:{server.port}",
            "--trust",
            server.fingerprint,
        ]
        self._capsys = capsys

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        self._capsys.readouterr()
        status = await asyncio.to_thread(cli.main, [*self._options, *args])
        out, err = self._capsys.readouterr()
        return status, out, err


@pytest.fixture
async def pixmart(
    server: PixmartServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The CLI, logged in as alice."""
    monkeypatch.setenv("PIXMART_PASSWORD", "password123")
    run = Cli(server, capsys)
    assert (await run("account", "create", "alice"))[0] == 0
    assert (await run("login", "alice"))[0] == 0
    return run


async def test_upload_folders_then_browse_edit_and_delete(
    server: PixmartServer, pixmart: Cli, tmp_path: Path
) -> None:
    shop = tmp_path / "shop"
    write(shop, "red_bike-01.jpg", jpeg(60))
    write(shop, "nested/deeper/Blue Sky.PNG", png(61))
    write(shop, "notes.txt", b"not a picture, not even looked at")
    write(shop, "broken.jpg", b"\xff\xd8\xff\xe0 this is not a JPEG")
    lone = write(tmp_path, "lone.webp.txt", b"named explicitly, wrong type")

    status, out, _ = await pixmart(
        "upload",
        str(shop),
        str(lone),
        "--price",
        "12.50",
        "--stock",
        "3",
        "--tags",
        "Bikes, sky",
        "--title-from-filename",
    )
    assert status == 1  # two files were rejected
    assert "uploaded 2, duplicates 0, rejected 2" in out
    assert "broken.jpg" in out and "lone.webp.txt" in out and "notes.txt" not in out
    assert (await stored(server)).items == 2

    status, out, _ = await pixmart("upload", str(shop), "--jobs", "2")
    assert status == 1 and "uploaded 0, duplicates 2, rejected 1" in out

    status, out, _ = await pixmart("browse", "--mine", "--json")
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(row["title"] for row in rows) == ["Blue Sky", "Red bike 01"]
    assert all(row["price_cents"] == 1250 and row["currency"] == "EUR" for row in rows)
    assert all(row["tags"] == ["bikes", "sky"] and row["stock"] == 3 for row in rows)
    assert all("thumbnail" not in row for row in rows)
    bike = next(row["id"] for row in rows if row["title"] == "Red bike 01")

    status, out, _ = await pixmart("browse", "--query", "red bi", "--max-price", "12.5")
    assert status == 0 and "Red bike 01" in out and "€12.50" in out and "Blue" not in out

    status, _, _ = await pixmart("edit", str(bike), "--price", "0.99", "--private", "--tags", "")
    assert status == 0
    status, out, _ = await pixmart("item", str(bike), "--json")
    detail = json.loads(out)
    assert (detail["price_cents"], detail["public"], detail["tags"]) == (99, False, [])
    assert "preview" not in detail and detail["format"] == "JPEG"

    saved = tmp_path / "download.jpg"
    status, out, _ = await pixmart("item", str(bike), "--download", str(saved))
    assert status == 0 and saved.read_bytes() == jpeg(60)

    status, out, err = await pixmart("delete", str(bike), "424242")
    assert status == 1 and f"deleted {bike}" in out and "424242" in err
    assert (await stored(server)).items == 1


async def test_bad_prices_are_refused_before_uploading(
    server: PixmartServer, pixmart: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path, "a.jpg", jpeg(62))
    for price in ("12.505", "-1", "abc", "1e-3", "NaN"):
        status, _, err = await pixmart("upload", str(path), "--price", price)
        assert status == 1, price
        assert "price" in err or "decimals" in err, err
    assert (await stored(server)).items == 0


def test_titles_from_file_names() -> None:
    assert title_from_filename(Path("red_bike-02.jpg")) == "Red bike 02"
    assert title_from_filename(Path("  __.png")) == "Untitled"
    assert title_from_filename(Path("already Nice.webp")) == "Already Nice"
