"""Smoke test of the real thing: ``pixmart`` in tmux against a real ``pixmart-server``.

Nothing is faked: the server is a subprocess with its own data dir, the client is the installed
``pixmart`` command in a 120x40 tmux window, driven with ``send-keys`` and read with
``capture-pane`` as a person would: log in, browse, open an item, add it to the cart, check out.
The order is then checked on the server through the protocol.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from protocol.catalogue_client import upload_file
from protocol.client import Session
from protocol.commerce_client import iter_orders
from protocol.messages.catalogue import ItemMetadata
from protocol.trust import TrustPolicy
from tui.demo import local_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

PIXMART = str(Path(sys.executable).with_name("pixmart"))
TITLE = "Smoke Test Teapot"


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=20
    ).stdout


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def _wait_for(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = _screen(session)
        if text in screen:
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")
        time.sleep(0.2)


def _keys(session: str, *keys: str) -> None:
    # One key at a time, each after the screen has had time to react: the waits for text on the
    # screen between steps are what keep the test in step with the app.
    for key in keys:
        _tmux("send-keys", "-t", session, key)
        time.sleep(0.15)


def _type(session: str, text: str) -> None:
    _tmux("send-keys", "-t", session, "-l", text)
    time.sleep(0.2)


async def _stock_the_shop(url: str, fingerprint: str, pictures: Path) -> None:
    seller = Session(url, TrustPolicy(fingerprint=fingerprint))
    await seller.connect()
    await seller.create_account("smokeseller", "password123")
    await seller.login("smokeseller", "password123")
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 90, 40)).save(out, "JPEG")
    path = pictures / "teapot.jpg"
    path.write_bytes(out.getvalue())
    await upload_file(seller, path, ItemMetadata(title=TITLE, price_cents=1250, stock=3))
    await seller.create_account("smokebuyer", "password123")
    await seller.close()


async def _orders_of_buyer(url: str, fingerprint: str) -> list[int]:
    buyer = Session(url, TrustPolicy(fingerprint=fingerprint))
    await buyer.connect()
    await buyer.login("smokebuyer", "password123")
    totals = [order.total_cents async for order in iter_orders(buyer)]
    await buyer.close()
    return totals


@pytest.fixture
def tmux_session(tmp_path: Path) -> Iterator[str]:
    name = f"pixmart-smoke-{os.getpid()}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_log_in_browse_add_to_cart_and_check_out(tmp_path: Path, tmux_session: str) -> None:
    with local_server(tmp_path / "server", extra=("--no-vision",)) as server:
        pictures = tmp_path / "pictures"
        pictures.mkdir()
        asyncio.run(_stock_the_shop(server.url, server.fingerprint, pictures))
        command = (
            f"env PIXMART_CONFIG_DIR={tmp_path / 'client'} TERM=xterm-256color "
            f"{PIXMART} --server {server.url} --trust {server.fingerprint}"
        )
        _tmux("new-session", "-d", "-s", tmux_session, "-x", "120", "-y", "40", command)

        _wait_for(tmux_session, "Password")
        # One burst, as a password manager types it: each key must still reach its own field.
        _tmux("send-keys", "-t", tmux_session, "smokebuyer", "Tab", "password123", "Enter")

        screen = _wait_for(tmux_session, TITLE)  # the gallery shows the item
        assert "connected" in screen and "smokebuyer" in screen
        _keys(tmux_session, "Enter")
        _wait_for(tmux_session, "Add to cart")
        _keys(tmux_session, "a")
        _wait_for(tmux_session, "cart 1")
        _keys(tmux_session, "c")
        _wait_for(tmux_session, "€12.50")
        _keys(tmux_session, "b")
        _wait_for(tmux_session, "Buy for €12.50")  # the confirmation shows the total
        _keys(tmux_session, "y")
        _wait_for(tmux_session, "cart 0")

        assert asyncio.run(_orders_of_buyer(server.url, server.fingerprint)) == [1250]
