"""Provides the checkout benchmark: orders per second with concurrent buyers over loopback TLS.

A real ``pixmart-server`` process (no image model) serves buyers that each loop "add one unit to
the cart, check out" against items with stock to spare. Every commit is durable (WAL with
``synchronous = FULL``), so the figure includes the disk's fsync. Each setting runs several
times after a warm-up; the rows give the median and the range.

Run alone with ``.venv/bin/python -m tests.bench.bench_checkout``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from protocol import commerce_client as shop
from protocol.client import Session
from tests.support.commerce import ServerProcess, list_item, sign_up

BUYERS = 20
ORDERS_PER_BUYER = 15
#: Two requests per order: a single connection stays inside the server's burst allowance.
SINGLE_BUYER_ORDERS = 60
RUNS = 5
ITEMS = 5


async def _buy(buyer: Session, items: list[int], orders: int, rng: random.Random) -> list[float]:
    """Place ``orders`` one-unit orders; return each checkout's latency in seconds."""
    latencies: list[float] = []
    for _ in range(orders):
        cart = await shop.add_to_cart(buyer, rng.choice(items), 1)
        started = time.perf_counter()
        await shop.checkout(buyer, cart.total_cents, shop.new_checkout_key())
        latencies.append(time.perf_counter() - started)
    return latencies


async def _one_run(
    buyers: list[Session], items: list[int], orders_per_buyer: int, seed: int
) -> tuple[float, float]:
    """One run; returns (orders per second, median checkout latency in ms)."""
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            _buy(buyer, items, orders_per_buyer, random.Random(seed * 1000 + n))
            for n, buyer in enumerate(buyers)
        )
    )
    elapsed = time.perf_counter() - started
    latencies = [latency for result in results for latency in result]
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


def _row(what: str, setting: str, values: list[float], unit: str) -> dict[str, Any]:
    return {
        "what": what,
        "setting": setting,
        "median": statistics.median(values),
        "unit": unit,
        "spread": f"{min(values):.3g}-{max(values):.3g}",
    }


async def _measure(data_dir: Path) -> list[dict[str, Any]]:
    server = ServerProcess(data_dir)
    await server.start()
    sessions: list[Session] = []
    try:
        seller = server.session()
        sessions.append(seller)
        await seller.connect()
        await sign_up(seller, "seller")
        items = [
            await list_item(seller, data_dir.parent / "pictures", price_cents=100 + n, stock=10**8)
            for n in range(ITEMS)
        ]
        buyers = [server.session() for _ in range(BUYERS)]
        sessions += buyers
        for n, buyer in enumerate(buyers):
            await buyer.connect()
            await sign_up(buyer, f"buyer{n}")

        await _one_run(buyers, items, 2, seed=0)  # warm-up: connections, caches, WAL
        many = [await _one_run(buyers, items, ORDERS_PER_BUYER, seed=r) for r in range(1, RUNS + 1)]
        # A different buyer each run, so no connection's request rate limit is reached.
        one = [
            await _one_run(buyers[r : r + 1], items, SINGLE_BUYER_ORDERS, seed=r)
            for r in range(1, RUNS + 1)
        ]
    finally:
        for session in sessions:
            await session.close()
        server.stop()
    throughput = _row(
        "checkout throughput",
        f"{BUYERS} buyers, add + checkout loops, loopback TLS",
        [rate for rate, _ in many],
        "orders/s",
    )
    single = _row(
        "checkout throughput",
        "1 buyer, add + checkout loop, loopback TLS",
        [rate for rate, _ in one],
        "orders/s",
    )
    throughput["comparison"] = "1 buyer"
    throughput["ratio"] = throughput["median"] / single["median"]
    latency = _row(
        "checkout latency (median)",
        f"{BUYERS} buyers",
        [median_ms for _, median_ms in many],
        "ms",
    )
    return [throughput, single, latency]


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per figure (see ``tests/bench/run.py``)."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-checkout-") as tmp:
        return asyncio.run(_measure(Path(tmp) / "server-data"))


if __name__ == "__main__":
    for result in run():
        print(
            f"{result['what']} [{result['setting']}]: {result['median']:.1f} {result['unit']}"
            f" (range {result['spread']})"
        )
