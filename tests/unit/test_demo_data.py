"""The demo catalogue shipped in ``data/demo/``: photos, shop copy and their provenance."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pixmart_data import data_file

DEMO_DIR: Path = data_file("demo")
CATALOGUE: Path = data_file("demo", "catalogue.json")
SOURCES: Path = data_file("demo", "SOURCES.md")
NOT_PHOTOS = {"catalogue.json", "SOURCES.md"}

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
FILE_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\.jpg$")
# Same rule as backend.accounts.service.USERNAME_RE, so the demo sellers can be registered.
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
# A Markdown table row whose first cell is a file name in backticks.
SOURCES_ROW_RE = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)

MIN_ITEMS = 30
MAX_FOLDER_BYTES = 8 * 1024 * 1024
MAX_LONG_SIDE = 1024
MIN_LONG_SIDE = 300
MIN_SHORT_SIDE = 256


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    with CATALOGUE.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture(scope="module")
def items(catalogue: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = catalogue["items"]
    return result


def photo_files() -> list[str]:
    return sorted(p.name for p in DEMO_DIR.iterdir() if p.is_file() and p.name not in NOT_PHOTOS)


def sources_files() -> list[str]:
    return SOURCES_ROW_RE.findall(SOURCES.read_text(encoding="utf-8"))


def test_folder_layout() -> None:
    assert CATALOGUE.is_file()
    assert SOURCES.is_file()
    files = photo_files()
    assert len(files) >= MIN_ITEMS
    bad = [name for name in files if not FILE_RE.match(name)]
    assert not bad, f"not lowercase-kebab .jpg names: {bad}"


def test_folder_total_size() -> None:
    total = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file())
    assert total < MAX_FOLDER_BYTES, f"data/demo is {total} bytes"


def test_every_file_has_its_provenance_in_sources() -> None:
    listed = sources_files()
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    assert not duplicates, f"listed twice in SOURCES.md: {duplicates}"
    missing = sorted(set(photo_files()) - set(listed))
    assert not missing, f"files without a SOURCES.md row: {missing}"
    stale = sorted(set(listed) - set(photo_files()))
    assert not stale, f"SOURCES.md rows for files that do not exist: {stale}"


def test_every_file_is_in_the_catalogue(items: list[dict[str, Any]]) -> None:
    names = [item["file"] for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"catalogue lists these files twice: {duplicates}"
    missing = sorted(set(photo_files()) - set(names))
    assert not missing, f"files not in catalogue.json: {missing}"


def test_enough_items(items: list[dict[str, Any]]) -> None:
    assert len(items) >= MIN_ITEMS


def test_sellers(catalogue: dict[str, Any], items: list[dict[str, Any]]) -> None:
    sellers = catalogue["sellers"]
    assert 2 <= len(sellers) <= 4
    usernames = [seller["username"] for seller in sellers]
    assert len(set(usernames)) == len(usernames)
    for seller in sellers:
        assert USERNAME_RE.match(seller["username"]), seller
        assert isinstance(seller["display"], str) and seller["display"].strip(), seller
    referenced = {item["seller"] for item in items}
    unknown = sorted(referenced - set(usernames))
    assert not unknown, f"items sold by unknown sellers: {unknown}"
    idle = sorted(set(usernames) - referenced)
    assert not idle, f"sellers with nothing to sell: {idle}"


def test_item_fields(items: list[dict[str, Any]]) -> None:
    expected = {"file", "seller", "title", "description", "price_cents", "stock", "tags", "public"}
    for item in items:
        assert set(item) == expected, item.get("file")
        name = item["file"]
        assert isinstance(item["title"], str) and item["title"].strip(), name
        assert isinstance(item["description"], str) and item["description"].strip(), name
        assert len(item["description"]) <= 400, name
        price = item["price_cents"]
        assert type(price) is int and price > 0, name
        stock = item["stock"]
        assert type(stock) is int and stock >= 0, name
        assert type(item["public"]) is bool, name


def test_tags(items: list[dict[str, Any]]) -> None:
    for item in items:
        tags = item["tags"]
        assert isinstance(tags, list) and 2 <= len(tags) <= 5, item["file"]
        assert len(set(tags)) == len(tags), item["file"]
        for tag in tags:
            assert isinstance(tag, str) and TAG_RE.match(tag), (item["file"], tag)


def test_demo_shows_the_edge_cases(items: list[dict[str, Any]]) -> None:
    stocks = [item["stock"] for item in items]
    assert 0 in stocks, "no sold-out item"
    assert 1 in stocks, "no last-one item"
    assert any(not item["public"] for item in items), "no private item"
    assert sum(item["public"] for item in items) >= MIN_ITEMS - 2


def test_every_catalogue_file_is_a_real_jpeg(items: list[dict[str, Any]]) -> None:
    for item in items:
        path = DEMO_DIR / item["file"]
        assert path.is_file(), f"missing {path.name}"
        with Image.open(path) as im:
            assert im.format == "JPEG", path.name
            im.verify()
        with Image.open(path) as im:
            im.load()
            assert im.mode == "RGB", (path.name, im.mode)
            long_side, short_side = max(im.size), min(im.size)
            assert MIN_LONG_SIDE <= long_side <= MAX_LONG_SIDE, (path.name, im.size)
            assert short_side >= MIN_SHORT_SIDE, (path.name, im.size)
