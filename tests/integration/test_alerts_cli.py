"""``pixmart alerts add / list / remove`` against a real server, and an alert they set off."""

from __future__ import annotations

import json
from pathlib import Path

from backend.server import PixmartServer
from protocol import inbox_client as inbox
from protocol.alerts_client import save_search
from protocol.messages.catalogue import ListingFilters
from tests.conftest import SessionFactory, logged_in
from tests.support.cli import Cli
from tests.support.commerce import PASSWORD, list_item, sign_up


async def test_saving_listing_and_removing_searches(
    cli: Cli, server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    code, out, _ = await cli(
        "alerts",
        "add",
        "--tags",
        "sky,Print",
        "--query",
        "sunset",
        "--max-price",
        "20",
        "--in-stock",
    )
    assert code == 0
    assert out.strip().endswith("“sunset” · tags: print, sky · up to €20.00 · in stock")
    code, out, _ = await cli("alerts", "add", "--query", "fox", "--min-price", "5", "--json")
    fox = json.loads(out)
    assert (fox["text"], fox["min_price_cents"], fox["like"]) == ("fox", 500, None)

    code, out, _ = await cli("alerts", "list", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [s["text"] for s in listed] == ["sunset", "fox"]
    assert listed[0]["tags"] == ["print", "sky"] and listed[0]["max_price_cents"] == 2000

    # A matching upload reaches bob's inbox.
    seller = await sign_up(await make_session(), "seller")
    item = await list_item(seller, tmp_path, title="Fox at dawn", price_cents=900)
    assert server.domains is not None
    await server.domains.alerts.matcher.idle()
    bob = await make_session()
    await bob.login("bob", PASSWORD)
    notices = (await inbox.inbox_batch(bob)).notices
    assert [(n.item_id, n.kind) for n in notices] == [(item, "alert_match")]

    code, out, _ = await cli("alerts", "remove", str(fox["id"]))
    assert (code, out.strip()) == (0, f"Removed saved search #{fox['id']}")
    code, out, _ = await cli("alerts", "list")
    assert code == 0 and "sunset" in out and "fox" not in out
    code, _, err = await cli("alerts", "remove", str(fox["id"]))
    assert code == 1 and "no saved search" in err


async def test_bad_options_are_refused_in_words(cli: Cli, make_session: SessionFactory) -> None:
    code, _, err = await cli("alerts", "add", "--query", "fox", "--min-similarity", "80")
    assert code == 1 and "--min-similarity goes with --like" in err
    code, _, err = await cli("alerts", "add")
    assert code == 1 and "what to look for" in err
    code, _, err = await cli("alerts", "add", "--like", "/nonexistent.jpg")
    assert code == 1 and "Cannot read" in err
    # Another user's search is not bob's to remove.
    alice = await logged_in(make_session, "alice")
    theirs = await save_search(alice, ListingFilters(text="owl"))
    code, _, err = await cli("alerts", "remove", str(theirs.id))
    assert code == 1 and "no saved search" in err
