"""``pixmart-server`` on PostgreSQL: ``migrate``, and starts that fail with one clear line.

The URL's password must never reach the output: every check below looks for it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from tests.integration.test_startup import _run, _serve, assert_fatal, assert_unlocked


def _password(url: str) -> str:
    password = urlsplit(url).password
    assert password, "the test server's URL carries a password"
    return password


async def test_migrate_says_an_up_to_date_database_is_up_to_date(pg_url: str) -> None:
    result = _run("pixmart-server", "--database", pg_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert "already up to date" in result.stdout
    assert _password(pg_url) not in result.stdout + result.stderr


async def test_migrate_brings_an_empty_database_to_the_newest_schema(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    result = _run("pixmart-server", "migrate", "--database", pg_url)
    assert result.returncode == 0, result.stderr
    assert "applied p0001_accounts" in result.stdout
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('items') IS NOT NULL")
    finally:
        await conn.close()


async def test_a_database_of_a_newer_pixmart_is_left_alone(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE pixmart_schema SET version = 999")
    finally:
        await conn.close()
    data_dir = tmp_path / "data"
    line = assert_fatal(
        _run(
            "pixmart-server",
            "--data-dir",
            str(data_dir),
            "serve",
            "--port",
            "0",
            "--no-vision",
            PIXMART_DATABASE=pg_url,
        ),
        "newer pixmart",
        "upgrade",
    )
    assert _password(pg_url) not in line
    assert_unlocked(data_dir)
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT version FROM pixmart_schema") == 999
    finally:
        await conn.close()


def test_a_wrong_password_stops_the_start_without_showing_it(pg_url: str, tmp_path: Path) -> None:
    wrong = pg_url.replace(f":{_password(pg_url)}@", ":not-the-password-7f3a@")
    result = _serve(tmp_path / "data", "--no-vision", "--database", wrong)
    line = assert_fatal(result, "cannot open or migrate the database", "PostgreSQL runs")
    assert "not-the-password-7f3a" not in result.stdout + result.stderr
    assert ":***@" in line


def test_a_database_that_is_no_url_is_refused(tmp_path: Path) -> None:
    result = _serve(tmp_path / "data", "--no-vision", "--database", "sqlite:/tmp/shop.db")
    assert result.returncode == 1
    assert "postgresql://" in result.stderr
