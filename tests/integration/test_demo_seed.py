"""The demo seed stocks a shop with exactly the demo catalogue, idempotently.

Seeding runs through the protocol as each seller (as `pixmart demo` does on first use); the
result must match `data/demo/catalogue.json` item for item, private items must stay with their
seller, and a second run (an interrupted first run re-done) must add nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.server import PixmartServer
from protocol.catalogue_client import iter_items
from protocol.client import Session
from protocol.trust import TrustPolicy
from tui.demo import CATALOGUE_DIR, DEMO_USER, DemoAccounts, seed_catalogue


async def _visible_to(
    server: PixmartServer, username: str, password: str
) -> list[tuple[str, str, int, int, list[str]]]:
    session = Session(f"wss://127.0.0.1:{server.port}", TrustPolicy(fingerprint=server.fingerprint))
    await session.connect()
    try:
        await session.login(username, password)
        return [
            (card.title, card.owner_name, card.price_cents, card.stock, sorted(card.tags))
            async for card in iter_items(session, batch=100)
        ]
    finally:
        await session.close()


async def test_demo_seed_produces_the_catalogue(server: PixmartServer, tmp_path: Path) -> None:
    catalogue = json.loads((CATALOGUE_DIR / "catalogue.json").read_text("utf-8"))
    accounts = DemoAccounts(tmp_path / "demo-accounts.json")
    url = f"wss://127.0.0.1:{server.port}"
    trust = TrustPolicy(fingerprint=server.fingerprint)

    listed = await seed_catalogue(url, trust, accounts)
    assert listed == len(catalogue["items"]) >= 30
    assert accounts.seeded
    assert (tmp_path / "demo-accounts.json").stat().st_mode & 0o777 == 0o600

    expected_public = sorted(
        (i["title"], i["seller"], i["price_cents"], i["stock"], sorted(i["tags"]))
        for i in catalogue["items"]
        if i["public"]
    )
    shopper = await _visible_to(server, DEMO_USER, accounts.password(DEMO_USER))
    assert sorted(shopper) == expected_public

    # A seller also sees their own private items.
    seller = catalogue["sellers"][0]["username"]
    own_private = [i for i in catalogue["items"] if i["seller"] == seller and not i["public"]]
    seen = await _visible_to(server, seller, accounts.password(seller))
    assert len(seen) == len(expected_public) + len(own_private)

    # Seeding again adds nothing (duplicates are recognised by picture hash).
    await seed_catalogue(url, trust, accounts)
    assert len(await _visible_to(server, DEMO_USER, accounts.password(DEMO_USER))) == len(
        expected_public
    )
