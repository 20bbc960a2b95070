"""The seller's sales summary through a real server: own figures only, exact, and the CLI's
``pixmart sales --summary`` in text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from backend.server import PixmartServer
from protocol import commerce_client as shop
from protocol.client import Session
from protocol.errors import BadRequest, Unauthenticated
from protocol.messages.sales import SalesSummary
from tests.conftest import SessionFactory, logged_in
from tests.support.cli import Cli, cli_as
from tests.support.commerce import PASSWORD, list_item
from tui.commands.sales_summary import CSV_COLUMNS


async def buy(session: Session, *lines: tuple[int, int]) -> None:
    """Check out a cart of ``(item id, quantity)`` lines as ``session``'s user."""
    for item_id, quantity in lines:
        cart = await shop.add_to_cart(session, item_id, quantity)
    await shop.checkout(session, cart.total_cents, shop.new_checkout_key())


def totals(summary: SalesSummary) -> list[tuple[str, int, int, int]]:
    """(currency, revenue, units, orders) per currency, and the days adding up to them."""
    for sales in summary.currencies:
        assert sum(point.revenue_cents for point in sales.days) == sales.revenue_cents
        assert sum(point.units for point in sales.days) == sales.units
    return [(s.currency, s.revenue_cents, s.units, s.orders) for s in summary.currencies]


async def test_each_seller_sees_only_their_own_sales_and_stock(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice, carol = await logged_in(make_session, "alice"), await logged_in(make_session, "carol")
    bob = await logged_in(make_session, "bob")
    sunset = await list_item(alice, tmp_path, title="Sunset", price_cents=1250, stock=5)
    harbour = await list_item(alice, tmp_path, title="Harbour", price_cents=333, stock=3)
    meadow = await list_item(carol, tmp_path, title="Meadow", price_cents=999, stock=2)
    # One order buys from both sellers; a second from alice alone.
    await buy(bob, (sunset, 2), (meadow, 2))
    await buy(bob, (harbour, 3), (sunset, 1))

    mine = await shop.sales_summary(alice, days=7, weeks=4)
    assert totals(mine) == [("EUR", 3 * 1250 + 3 * 333, 6, 2)]
    [eur] = mine.currencies
    assert [(t.item_id, t.revenue_cents, t.units, t.stock) for t in eur.top_by_revenue] == [
        (sunset, 3750, 3, 2),
        (harbour, 999, 3, 0),
    ]
    assert [t.item_id for t in eur.top_by_units] == [sunset, harbour]  # tie on units: revenue
    assert [(s.item_id, s.stock) for s in mine.low_stock] == [(sunset, 2)]
    assert [s.item_id for s in mine.sold_out] == [harbour]
    assert (len(eur.days), len(eur.weeks), mine.days, mine.weeks) == (7, 4, 7, 4)

    hers = await shop.sales_summary(carol)
    assert totals(hers) == [("EUR", 2 * 999, 2, 1)]
    assert [t.item_id for t in hers.currencies[0].top_by_revenue] == [meadow]
    assert ([s.item_id for s in hers.sold_out], hers.low_stock) == ([meadow], [])

    buyer = await shop.sales_summary(bob)
    assert totals(buyer) == [("EUR", 0, 0, 0)]
    assert buyer.currencies[0].top_by_units == [] and buyer.sold_out == []


async def test_the_summary_needs_a_login_and_sane_bounds(make_session: SessionFactory) -> None:
    stranger = await make_session()
    with pytest.raises(Unauthenticated):
        await shop.sales_summary(stranger)
    alice = await logged_in(make_session, "alice")
    for asked in ({"days": 0}, {"days": 367}, {"weeks": 105}, {"top": 0}, {"low_stock": -1}):
        with pytest.raises(BadRequest):
            await shop.sales_summary(alice, **asked)
    assert (await shop.sales_summary(alice, days=366, weeks=104)).days == 366  # still serving


async def test_the_summary_follows_the_servers_clock(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice, bob = await logged_in(make_session, "alice"), await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=500, stock=9)
    await buy(bob, (item, 1))
    assert server.domains is not None and server.domains.commerce.service is not None
    report = server.domains.commerce.service.report
    now = report.clock()
    # Ten days later the sale has left a 7-day window but not a 4-week one.
    report.clock = lambda: now + 10 * 86_400
    later = (await shop.sales_summary(alice, days=7, weeks=4)).currencies[0]
    assert (later.revenue_cents, later.top_by_revenue) == (0, [])
    assert sum(point.revenue_cents for point in later.weeks) == 500


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
async def sold(
    server: PixmartServer,
    make_session: SessionFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Cli, int]:
    """A CLI logged in as ``alice``, whose item ``Sunset`` bob bought twice; its id."""
    cli = await cli_as("alice", server, capsys, monkeypatch)
    alice = await make_session()
    await alice.login("alice", PASSWORD)
    item = await list_item(alice, tmp_path, title="Sunset, red", price_cents=1250, stock=4)
    bob = await logged_in(make_session, "bob")
    await buy(bob, (item, 1))
    await buy(bob, (item, 2))
    return cli, item


async def test_cli_summary_as_json(sold: tuple[Cli, int]) -> None:
    cli, item = sold
    code, out, _ = await cli("sales", "--summary", "--json", "--days", "3", "--weeks", "2")
    assert code == 0 and len(out.splitlines()) == 1
    summary = json.loads(out)
    assert (summary["days"], summary["weeks"], summary["low_stock_threshold"]) == (3, 2, 3)
    [eur] = summary["currencies"]
    assert (eur["currency"], eur["revenue_cents"], eur["units"], eur["orders"]) == (
        "EUR",
        3750,
        3,
        2,
    )
    assert len(eur["days"]) == 3 and eur["days"][-1]["start"] == summary["today"]
    assert [t["item_id"] for t in eur["top_by_revenue"]] == [item]
    assert [(s["item_id"], s["stock"]) for s in summary["low_stock"]] == [(item, 1)]


async def test_cli_summary_as_csv(sold: tuple[Cli, int]) -> None:
    cli, item = sold
    code, out, _ = await cli("sales", "--summary", "--csv", "--days", "3", "--weeks", "2")
    assert code == 0
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    sections = [row["section"] for row in rows]
    assert sections == ["day"] * 3 + ["week"] * 2 + ["top_revenue", "top_units", "low_stock"]
    days = [row for row in rows if row["section"] == "day"]
    assert sum(int(row["revenue_minor"]) for row in days) == 3750
    assert {row["revenue"] for row in days} <= {"0.00", "37.50", "12.50", "25.00"}
    top = rows[5]
    assert (top["rank"], top["item_id"], top["title"], top["revenue"], top["units"]) == (
        "1",
        str(item),
        "Sunset, red",  # the comma quoted, not a column more
        "37.50",
        "3",
    )
    assert (rows[-1]["item_id"], rows[-1]["stock"], rows[-1]["currency"]) == (str(item), "1", "")


async def test_cli_summary_as_text_and_refusals(sold: tuple[Cli, int]) -> None:
    cli, _ = sold
    code, out, _ = await cli("sales", "--summary")
    assert code == 0
    assert "EUR: €37.50 from 3 units in 2 orders" in out
    assert "Low on stock (1 to 3): 1" in out and "Sold out: none" in out
    code, _, err = await cli("sales", "--summary", "--json", "--csv")
    assert code == 1 and "Choose one of --json and --csv" in err
    code, _, err = await cli("sales", "--summary", "--days", "0")
    assert code == 1 and "--days must be from 1 to 366" in err
    code, _, err = await cli("sales", "--csv")
    assert code == 1 and "--csv goes with --summary" in err
