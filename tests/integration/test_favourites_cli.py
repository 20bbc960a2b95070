"""The scripting CLI's ``fav`` and ``inbox`` commands against a real server."""

from __future__ import annotations

import json
from pathlib import Path

from protocol.catalogue_client import delete_items, edit_item
from tests.conftest import SessionFactory, logged_in
from tests.support.cli import Cli
from tests.support.commerce import list_item


async def test_favourites_from_the_command_line(
    cli: Cli, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    harbour = await list_item(alice, tmp_path, title="Harbour", price_cents=900)
    dunes = await list_item(alice, tmp_path, title="Dunes", price_cents=700)
    secret = await list_item(alice, tmp_path, title="Draft", public=False)

    code, out, _ = await cli("fav")
    assert (code, out.strip()) == (0, "You keep no favourites yet: pixmart fav add ITEM")
    code, out, _ = await cli("fav", "add", str(harbour))
    assert (code, out.strip()) == (0, f"Item {harbour} is a favourite (1 favourite kept)")
    code, out, _ = await cli("fav", "add", str(dunes), "--json")
    assert json.loads(out) == {
        "type": "FavouriteState",
        "id": json.loads(out)["id"],
        "item_id": dunes,
        "favourite": True,
        "count": 2,
    }
    code, _, err = await cli("fav", "add", str(secret))
    assert code == 1 and f"There is no item {secret}" in err

    await edit_item(alice, harbour, price_cents=800)
    await delete_items(alice, [dunes])
    code, out, _ = await cli("fav", "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert "Dunes" in lines[0] and "[deleted by the seller]" in lines[0]
    assert "Harbour" in lines[1] and "€8.00" in lines[1] and "[was €9.00]" in lines[1]
    code, out, _ = await cli("fav", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(f["item_id"], f["status"]) for f in listed] == [
        (dunes, "deleted"),
        (harbour, "available"),
    ]
    assert listed[1]["card"]["id"] == harbour and listed[1]["card"]["thumbnail"] is None
    code, out, _ = await cli("fav", "remove", str(dunes))
    assert (code, out.strip()) == (0, f"Item {dunes} is not a favourite (1 favourite kept)")


async def test_the_inbox_from_the_command_line(
    cli: Cli, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    item = await list_item(alice, tmp_path, title="Harbour", price_cents=900, stock=0)
    assert (await cli("fav", "add", str(item)))[0] == 0
    code, out, _ = await cli("inbox")
    assert (code, out.strip()) == (0, "Your inbox is empty")

    await edit_item(alice, item, stock=2)
    await edit_item(alice, item, price_cents=500)
    code, out, _ = await cli("inbox", "--json")
    notices = [json.loads(line) for line in out.splitlines()]
    assert [(n["kind"], n["item_id"]) for n in notices] == [
        ("price_drop", item),
        ("back_in_stock", item),
    ]
    code, out, _ = await cli("inbox")
    assert out.splitlines()[0].startswith("*") and "'Harbour' now costs €5.00" in out

    code, out, _ = await cli("inbox", "read", str(notices[0]["id"]))
    assert (code, out.strip()) == (0, "1 unread notice")
    code, _, err = await cli("inbox", "read")
    assert code == 1 and "--all" in err
    code, out, _ = await cli("inbox", "read", "--all", "--json")
    assert (code, json.loads(out)) == (0, {"unread": 0})
    code, out, _ = await cli("inbox", "clear")
    assert (code, out.strip()) == (0, "0 unread notices")
    code, out, _ = await cli("inbox")
    assert out.strip() == "Your inbox is empty"
