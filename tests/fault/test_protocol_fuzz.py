"""Protocol fuzzing from a raw websockets peer: the server never crashes, memory stays bounded,
and a well-behaved client connected at the same time sees no error.

Hypothesis generates malformed, truncated, oversized-field and out-of-order messages (at least
10,000 in all); they are pipelined over raw connections, reopened whenever the server closes one
for abuse (close code 1008), as it should.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import secrets

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from backend.server import PixmartServer
from protocol import codec
from protocol.messages.accounts import CreateAccount, Login, Resume, WhoAmI
from protocol.messages.base import PROTOCOL_VERSION, Hello
from tests.conftest import SessionFactory, logged_in
from tests.fault.conftest import raw_peer

TOTAL_MESSAGES = 10_000
#: Hypothesis draws the frames in small lists; the total is what counts.
BATCH = 25

_valid = [
    codec.encode(Hello(id=1, version=PROTOCOL_VERSION, client_id=secrets.token_hex(16))),
    codec.encode(WhoAmI(id=2)),
    codec.encode(Login(id=3, username="nobody", password="wrong-password")),
    codec.encode(Resume(id=4, token="not-a-token")),
    codec.encode(CreateAccount(id=5, username="x", password="y")),
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_type_names = st.sampled_from(
    ["Hello", "Login", "WhoAmI", "Resume", "ErrorReply", "Welcome", "Ok", "Nope", "", "ItemAdded"]
)
_structured = st.fixed_dictionaries(
    {"type": st.one_of(_type_names, _values)},
    optional={
        "id": _values,
        "version": _values,
        "username": _values,
        "password": _values,
        "token": _values,
    },
).map(msgspec.msgpack.encode)
_truncated = st.builds(
    lambda frame, cut: frame[: max(1, len(frame) * cut // 100)],
    st.sampled_from(_valid),
    st.integers(min_value=1, max_value=99),
)
_flipped = st.builds(
    lambda frame, at, byte: frame[: at % len(frame)] + bytes([byte]) + frame[at % len(frame) + 1 :],
    st.sampled_from(_valid),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=255),
)
_frames = st.one_of(
    st.binary(max_size=200),
    _structured,
    _truncated,
    _flipped,
    st.sampled_from(_valid),  # valid but out of order (before Hello, twice, ...)
    st.text(max_size=50),  # text frames
)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _pump(server: PixmartServer, frames: list[bytes | str]) -> int:
    """Send ``frames`` pipelined on raw connections; return how many were sent."""
    open_peer = raw_peer(server)
    sent = 0
    while sent < len(frames):
        try:
            async with open_peer() as ws:
                reader = asyncio.create_task(_drain(ws))
                while sent < len(frames):
                    await ws.send(frames[sent])
                    sent += 1
                await ws.close()
                await reader
        except ConnectionClosed:
            continue  # closed for abuse: open a new connection and carry on
    return sent


async def _drain(ws: object) -> None:
    try:
        async for _ in ws:  # type: ignore[attr-defined]
            pass
    except ConnectionClosed:
        pass


async def test_ten_thousand_malformed_messages(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    good = await logged_in(make_session, "steady")
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def well_behaved() -> int:
        calls = 0
        while not stop.is_set():
            try:
                me = await good.whoami()
                assert me.username == "steady"
            except BaseException as exc:  # every failure is a finding
                errors.append(exc)
            calls += 1
            await asyncio.sleep(0.01)
        return calls

    batches: list[list[bytes | str]] = []

    @settings(
        max_examples=TOTAL_MESSAGES // BATCH,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(st.lists(_frames, min_size=BATCH, max_size=BATCH))
    def collect(frames: list[bytes | str]) -> None:
        batches.append(frames)

    collect()
    total_generated = sum(len(b) for b in batches)
    assert total_generated >= TOTAL_MESSAGES

    watcher = asyncio.create_task(well_behaved())
    gc.collect()
    before = _rss_mib()
    total = await _pump(server, [frame for batch in batches for frame in batch])
    stop.set()
    calls = await watcher
    gc.collect()
    growth = _rss_mib() - before

    assert total >= TOTAL_MESSAGES
    assert errors == []
    assert calls > 10
    # Bounded: the fuzz run must not make the process hold on to what it was sent.
    assert growth < 200, f"RSS grew by {growth:.0f} MiB"
    # The server is still fully functional afterwards.
    assert (await good.whoami()).username == "steady"
