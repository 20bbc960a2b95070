"""Benchmarks of the client session: connecting, logging in, resuming and healing a dropped link.

Measured on loopback against a real TLS server in a temporary data dir:

1. a new :class:`Session` to an authenticated session: connect + login (password check included),
   and connect + resume with a saved token;
2. a dropped link (``abort_transport``) until the status is CONNECTED again and a ``whoami``
   succeeds, with a backoff that starts at 0.05 s (split into the backoff delay the session chose
   and the rest: TCP + TLS + WebSocket handshakes, Hello, Resume and the request), and with no
   backoff at all (the pure cost of reconnecting);
3. for scale, one request round trip (``whoami``) on an open session.

Run with ``.venv/bin/python -m tests.bench.bench_session``; ``make bench`` collects ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import Backoff, ConnectionState, ConnectionStatus, Session
from protocol.trust import TrustPolicy

N = 20
USERNAME = "bench-user"
PASSWORD = "bench-password-123"


def _row(what: str, setting: str, samples_s: list[float]) -> dict[str, Any]:
    """A result row from samples in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    deciles = statistics.quantiles(ms, n=10, method="inclusive")
    return {
        "what": what,
        "setting": setting,
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(deciles[8], 2),
        "spread": f"p10 {deciles[0]:.1f} - p90 {deciles[8]:.1f} ms",
        "n": len(ms),
    }


async def _timed(action: Callable[[], Awaitable[None]], n: int = N) -> list[float]:
    samples: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return samples


async def _timed_sessions(
    make: Callable[[], Session], then: Callable[[Session], Awaitable[None]], n: int = N
) -> list[float]:
    """Seconds from a new session to the end of ``then``; closing it is not counted."""
    samples: list[float] = []
    for _ in range(n):
        session = make()
        started = time.perf_counter()
        await session.connect()
        await then(session)
        samples.append(time.perf_counter() - started)
        await session.close()
    return samples


class _Reconnects:
    """Drops a session's link and times the way back to a working, resumed session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.connected = asyncio.Event()
        self.delays: list[float] = []
        session.on_status(self._on_status)

    def _on_status(self, status: ConnectionStatus) -> None:
        if status.state is ConnectionState.RECONNECTING and status.next_attempt_at is not None:
            # Called right after the session picked its delay: this is that delay.
            self.delays.append(max(0.0, status.next_attempt_at - time.time()))
        elif status.state is ConnectionState.CONNECTED:
            self.connected.set()

    async def once(self) -> float:
        self.connected.clear()
        started = time.perf_counter()
        self.session.abort_transport()
        await self.connected.wait()
        await self.session.whoami()
        return time.perf_counter() - started


async def _bench() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(data_dir=Path(tmp) / "data", port=0, enable_vision=False)
        server = PixmartServer(config)
        with contextlib.redirect_stdout(io.StringIO()):  # the start-up banner
            await server.start()
        url = f"wss://127.0.0.1:{server.port}"
        trust = TrustPolicy(fingerprint=server.fingerprint)
        try:
            async with Session(url, trust) as setup:
                await setup.create_account(USERNAME, PASSWORD)
                await setup.login(USERNAME, PASSWORD)
                token = setup.token

                async def login(session: Session) -> None:
                    await session.login(USERNAME, PASSWORD)

                async def resumed(session: Session) -> None:
                    assert session.user is not None  # connect() resumed with the token

                await _timed_sessions(lambda: Session(url, trust), login, n=2)  # warm-up
                rows.append(
                    _row(
                        "new session to logged in",
                        "connect + login (Argon2id check)",
                        await _timed_sessions(lambda: Session(url, trust), login),
                    )
                )
                rows.append(
                    _row(
                        "new session to logged in",
                        "connect + resume with token",
                        await _timed_sessions(lambda: Session(url, trust, token=token), resumed),
                    )
                )

                async def whoami() -> None:
                    await setup.whoami()

                rows.append(
                    _row("request round trip", "whoami, open session", await _timed(whoami))
                )

            for label, backoff in (
                ("backoff initial 0.05 s", Backoff(initial=0.05, factor=2.0, maximum=1.0)),
                ("no backoff (initial 0)", Backoff(initial=0.0, factor=2.0, maximum=0.0)),
            ):
                async with Session(url, trust, token=token, backoff=backoff) as session:
                    reconnects = _Reconnects(session)
                    await reconnects.once()  # warm-up
                    reconnects.delays.clear()
                    totals = [await reconnects.once() for _ in range(N)]
                rows.append(_row("drop to resumed + whoami", label, totals))
                if backoff.initial > 0:
                    delays = reconnects.delays
                    rows.append(_row("  of which backoff delay", label, delays))
                    rows.append(
                        _row(
                            "  of which reconnect work",
                            label,
                            [total - delay for total, delay in zip(totals, delays, strict=True)],
                        )
                    )
        finally:
            await server.stop()
    return rows


def run() -> list[dict[str, Any]]:
    """Run the benchmarks; one row per figure."""
    return asyncio.run(_bench())


def main() -> None:
    """Print the figures as a table."""
    rows = run()
    print(f"{'what':<28} {'setting':<34} {'median ms':>10} {'p90 ms':>8} {'n':>3}")
    for row in rows:
        print(
            f"{row['what']:<28} {row['setting']:<34} {row['median_ms']:>10.2f} "
            f"{row['p90_ms']:>8.2f} {row['n']:>3}"
        )


if __name__ == "__main__":
    main()
