"""The listing cache of one instance follows what happens on another (PostgreSQL, two servers
in one process): a batch cached on A is dropped as soon as A hears of B's edit or deletion."""

from __future__ import annotations

from pathlib import Path

from protocol.catalogue_client import browse, delete_items, edit_item
from protocol.messages.live import ItemChanged, ItemRemoved
from tests.integration.test_cluster_events import watching
from tests.support.commerce import list_item
from tests.support.two_instances import Cluster


async def test_batches_cached_on_one_instance_follow_changes_made_on_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    seller = await cluster.user(cluster.b, "seller")
    kept = await list_item(seller, tmp_path, title="Kept", price_cents=800)
    item = await list_item(seller, tmp_path, title="Changing", price_cents=800)
    viewer = await cluster.user(cluster.a, "viewer")
    heard = await watching(viewer)
    before = await browse(viewer)
    assert [(c.id, c.price_cents) for c in before.items] == [(item, 800), (kept, 800)]

    await edit_item(seller, item, price_cents=900)
    await heard.wait_for(ItemChanged, lambda e: e.item_id == item and e.price_cents == 900)
    after = await browse(viewer)
    assert [(c.id, c.price_cents) for c in after.items] == [(item, 900), (kept, 800)]

    await edit_item(seller, item, public=False)
    await heard.wait_for(ItemRemoved, lambda e: e.item_id == item)
    assert [c.id for c in (await browse(viewer)).items] == [kept]

    await delete_items(seller, [kept])
    await heard.wait_for(ItemRemoved, lambda e: e.item_id == kept)
    assert (await browse(viewer)).items == []
