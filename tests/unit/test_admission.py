"""Unit tests of the pre-login gate, the byte budget and the frame meter (backend/admission.py).

The meter is checked against websockets' own frame encoder: whatever the frames and however the
stream is cut into reads, every byte reaches websockets unchanged and in order, each message is
charged what it should be, and the stream stops at a message that does not fit the budget and
goes on once it fits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from http import HTTPStatus

import pytest
from websockets.frames import BINARY, CONT, PING, TEXT, Frame, Opcode

from backend.admission import (
    AddressRate,
    AddressTally,
    BudgetShares,
    ByteBudget,
    FrameMeter,
    PreLoginGate,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
FREE = 64


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- PreLoginGate ----------------------------------------------------------------------------


def test_the_gate_caps_each_address_and_says_when_a_place_frees() -> None:
    clock = Clock()
    gate = PreLoginGate(per_address=2, total=10, window=30.0, clock=clock)
    assert gate.admit("a", "10.0.0.1") is None
    clock.now += 10
    assert gate.admit("b", "10.0.0.1") is None
    refusal = gate.admit("c", "10.0.0.1")
    assert refusal is not None and refusal.status is HTTPStatus.TOO_MANY_REQUESTS
    assert refusal.retry_after == 20  # the oldest connection's deadline
    assert gate.admit("d", "10.0.0.2") is None  # another address has its own places
    gate.release("a")  # logged in
    assert gate.admit("c", "10.0.0.1") is None
    assert gate.count == 3 and gate.count_from("10.0.0.1") == 2


def test_the_gate_caps_the_server_and_counts_an_ipv6_64_as_one_address() -> None:
    clock = Clock()
    gate = PreLoginGate(per_address=2, total=3, window=30.0, clock=clock)
    assert gate.admit(1, "2001:db8::1") is None
    assert gate.admit(2, "2001:db8::2") is None
    same_block = gate.admit(3, "2001:db8::ffff")
    assert same_block is not None and same_block.status is HTTPStatus.TOO_MANY_REQUESTS
    assert gate.admit(4, "::ffff:192.0.2.7") is None  # IPv4-mapped: the IPv4 address
    clock.now += 29.5
    full = gate.admit(5, "192.0.2.8")
    assert full is not None and full.status is HTTPStatus.SERVICE_UNAVAILABLE
    assert full.retry_after == 1  # never less than a second
    assert gate.count_from("192.0.2.7") == 1


def test_a_full_gate_makes_room_by_closing_the_busiest_addresss_oldest() -> None:
    closed: list[object] = []
    gate = PreLoginGate(per_address=3, total=4, window=30.0, clock=Clock(), on_evict=closed.append)
    for handle in ("a1", "a2", "a3"):
        assert gate.admit(handle, "10.0.0.1") is None  # one attacker address, three places
    assert gate.admit("b1", "10.0.0.2") is None
    assert gate.admit("person", "192.0.2.1") is None  # full, so a1 (oldest, busiest) goes
    assert closed == ["a1"] and gate.evicted == 1 and gate.count == 4
    # The attacker cannot take the place back: its third would make it the busiest again.
    again = gate.admit("a4", "10.0.0.1")
    assert again is not None and again.status is HTTPStatus.SERVICE_UNAVAILABLE
    gate.release("a3")
    assert gate.admit("c1", "10.0.0.3") is None  # a free place, no eviction
    # Every address holds one place now: a newcomer is turned away, nobody is closed.
    refused = gate.admit("d1", "10.0.0.4")
    assert refused is not None and refused.status is HTTPStatus.SERVICE_UNAVAILABLE
    assert closed == ["a1"]


def test_a_deadline_is_fixed_when_counted_and_renewed_only_by_a_logout() -> None:
    clock = Clock()
    gate = PreLoginGate(per_address=1, total=5, window=30.0, clock=clock)
    gate.admit("a", "10.0.0.1")
    assert gate.deadline("a") == 1030.0
    clock.now += 5
    gate.release("a")
    assert gate.deadline("a") is None
    clock.now += 100
    # Logged out: counted again (even past the cap: it is open), with a fresh deadline.
    gate.admit("b", "10.0.0.1")
    assert gate.rejoin("a", "10.0.0.1") == 1135.0
    assert gate.count_from("10.0.0.1") == 2
    gate.release("a")
    gate.release("a")  # twice is harmless
    gate.release("b")
    assert gate.count == 0


# -- ByteBudget ------------------------------------------------------------------------------


def test_the_budget_grants_in_order_and_nobody_passes_a_waiter() -> None:
    budget = ByteBudget(100)
    granted: list[str] = []
    assert budget.try_take(60)
    big = budget.wait(70, lambda: granted.append("big"))
    assert not budget.try_take(10)  # fits, but would pass the waiter
    budget.wait(10, lambda: granted.append("small"))
    assert granted == [] and budget.waiting == 2
    budget.release(60)
    assert granted == ["big", "small"] and budget.in_use == 80
    budget.cancel(big)  # already granted: nothing happens
    assert budget.in_use == 80 and budget.peak == 80
    with pytest.raises(ValueError):
        budget.try_take(101)


def test_a_cancelled_waiter_lets_the_next_one_through() -> None:
    budget = ByteBudget(100)
    granted: list[str] = []
    assert budget.try_take(50)
    first = budget.wait(80, lambda: granted.append("first"))
    budget.wait(40, lambda: granted.append("second"))
    budget.cancel(first)
    assert granted == ["second"] and budget.in_use == 90


# -- FrameMeter ------------------------------------------------------------------------------


class Harness:
    """A meter wired to a list (what websockets would get) and a manual event loop."""

    def __init__(self, capacity: int, limit: int | None = 10_000, copies: int = 1) -> None:
        self.budget = ByteBudget(capacity)
        self.fed = bytearray()
        self.paused = False
        self.pending: list[Callable[[], None]] = []
        self.limit = limit
        self.meter = FrameMeter(
            self.budget,
            free_bytes=FREE,
            limit=lambda: self.limit,
            feed=self.fed.extend,
            pause=self._pause,
            call_soon=self.pending.append,
            copies=copies,
        )

    def _pause(self, paused: bool) -> None:
        self.paused = paused

    def run_soon(self) -> None:
        while self.pending:
            self.pending.pop(0)()

    def send(self, data: bytes, chunk: int | None = None) -> None:
        step = chunk or len(data) or 1
        for start in range(0, len(data), step):
            self.meter.receive(data[start : start + step])


def frame(opcode: Opcode, size: int, fin: bool = True) -> bytes:
    return Frame(opcode, bytes(i % 251 for i in range(size)), fin=fin).serialize(mask=True)


def test_each_message_is_charged_its_size_and_small_ones_nothing() -> None:
    h = Harness(capacity=1000)
    h.send(REQUEST + frame(BINARY, 10) + frame(BINARY, 300) + frame(TEXT, 65) + frame(BINARY, 0))
    assert [h.meter.take() for _ in range(5)] == [0, 300, 65, 0, 0]
    assert h.budget.in_use == 365


def test_by_default_a_message_counts_twice_for_its_decoded_copy() -> None:
    h = Harness(capacity=1000, copies=2)
    h.send(REQUEST + frame(BINARY, 300) + frame(BINARY, 700) + frame(BINARY, 65))
    assert h.meter.take() == 600 and h.meter.holding
    h.budget.release(600)
    h.run_soon()
    assert h.meter.take() == 1000 and h.meter.holding  # never more than the whole budget
    h.budget.release(1000)
    h.run_soon()
    assert h.meter.take() == 130 and h.budget.in_use == 130 and not h.meter.holding


def test_a_fragmented_message_reserves_the_limit_and_keeps_what_it_used() -> None:
    h = Harness(capacity=1000, limit=800)
    h.send(REQUEST + frame(BINARY, 100, fin=False) + frame(PING, 4))
    assert h.budget.in_use == 800  # its size is not known yet
    h.send(frame(CONT, 100, fin=False) + frame(CONT, 50))
    assert h.meter.take() == 250 and h.budget.in_use == 250
    # Small in all: nothing kept.
    h.send(frame(TEXT, 20, fin=False) + frame(CONT, 20))
    assert h.meter.take() == 0 and h.budget.in_use == 250


def test_frames_over_the_limit_are_not_charged_as_websockets_cuts_them() -> None:
    h = Harness(capacity=1000, limit=500)
    h.send(REQUEST + frame(BINARY, 600))
    assert h.budget.in_use == 0 and not h.paused


def test_a_message_that_does_not_fit_stops_the_stream_until_it_fits() -> None:
    h = Harness(capacity=500)
    first, second, third = frame(BINARY, 400), frame(BINARY, 300), frame(BINARY, 10)
    stream = REQUEST + first + second + third
    h.send(stream, chunk=37)
    # The second message's header went on; its payload waits, and reading stopped.
    assert h.paused and h.meter.holding
    assert bytes(h.fed) == stream[: len(REQUEST) + len(first) + 4 + 4]
    assert h.meter.take() == 400
    h.budget.release(400)
    h.run_soon()
    assert not h.paused and bytes(h.fed) == stream
    assert [h.meter.take(), h.meter.take()] == [300, 0]


def test_closing_gives_back_every_charge_not_taken_and_leaves_the_queue() -> None:
    h = Harness(capacity=500)
    h.send(REQUEST + frame(BINARY, 200) + frame(BINARY, 200) + frame(BINARY, 300))
    assert h.budget.in_use == 400 and h.budget.waiting == 1
    taken = h.meter.take()
    h.meter.close()
    assert h.budget.in_use == taken == 200 and h.budget.waiting == 0
    assert h.meter.take() == 0
    h.budget.release(taken)
    assert h.budget.in_use == 0


def test_a_grant_that_arrives_after_close_is_given_back() -> None:
    h = Harness(capacity=500)
    h.send(REQUEST + frame(BINARY, 400) + frame(BINARY, 300))
    h.budget.release(h.meter.take())  # granted: _resume is scheduled
    h.meter.close()
    h.run_soon()
    assert h.budget.in_use == 0


@pytest.mark.parametrize("seed", range(20))
def test_any_stream_in_any_cuts_reaches_websockets_unchanged(seed: int) -> None:
    rng = random.Random(seed)
    h = Harness(capacity=2000, limit=1500)
    frames: list[bytes] = []
    expected: list[int] = []
    for _ in range(40):
        kind = rng.random()
        if kind < 0.15:
            frames.append(frame(PING, rng.randrange(0, 126)))
        elif kind < 0.3:
            sizes = [rng.randrange(0, 300) for _ in range(rng.randrange(2, 5))]
            for n, size in enumerate(sizes):
                opcode = BINARY if n == 0 else CONT
                frames.append(frame(opcode, size, fin=n == len(sizes) - 1))
            total = sum(sizes)
            expected.append(total if total > FREE else 0)
        else:
            size = rng.choice([rng.randrange(0, FREE + 1), rng.randrange(0, 1400), 70_000])
            frames.append(frame(BINARY, size))
            expected.append(size if FREE < size <= 1500 else 0)
    stream = REQUEST + b"".join(frames)
    charges: list[int] = []
    position = 0
    while position < len(stream) or h.meter.holding or h.pending:
        if not h.paused and position < len(stream):
            step = rng.choice([1, 2, 3, 7, 64, 500, 4096])
            h.meter.receive(stream[position : position + step])
            position += step
        # The reader takes a message whenever a whole one has gone to websockets.
        while len(charges) < len(expected) and h.meter.queued and rng.random() < 0.7:
            charge = h.meter.take()
            charges.append(charge)
            h.budget.release(charge)
        if h.paused and not h.pending and h.meter.queued:
            charge = h.meter.take()
            charges.append(charge)
            h.budget.release(charge)
        h.run_soon()
    while len(charges) < len(expected):
        charges.append(h.meter.take())
        h.budget.release(charges[-1])
    assert bytes(h.fed) == stream
    assert charges == expected
    assert h.budget.in_use == 0 and h.budget.peak <= 2000


def test_the_address_tally_counts_open_connections_per_address() -> None:
    tally = AddressTally(per_address=2)
    assert tally.admit("a", "10.0.0.1") is None
    assert tally.admit("a", "10.0.0.1") is None  # counted once
    assert tally.admit("b", "10.0.0.1") is None
    refusal = tally.admit("c", "10.0.0.1")
    assert refusal is not None and refusal.status == 429 and refusal.retry_after >= 1
    assert tally.admit("d", "10.0.0.2") is None
    tally.release("a")
    tally.release("a")  # twice is fine
    assert tally.count_from("10.0.0.1") == 1
    assert tally.admit("c", "10.0.0.1") is None


def test_an_address_share_bounds_what_its_connections_hold_of_the_whole() -> None:
    whole = ByteBudget(10)
    shares = BudgetShares(whole, per_address=4)
    one, same = shares.join("10.0.0.1"), shares.join("10.0.0.1")
    other = shares.join("10.0.0.2")
    assert one.try_take(3)
    assert not same.try_take(2)  # the address's share is spent, the whole is not
    granted: list[str] = []
    waiter = same.wait(2, lambda: granted.append("same"))
    assert other.try_take(4) and whole.in_use == 7
    one.release(3)
    assert granted == ["same"] and waiter.done
    assert shares.in_use_by("10.0.0.1") == 2 and whole.in_use == 6
    # Waiting for the whole after the share was taken: a cancel gives the share back.
    assert other.try_take(0)
    hog = shares.join("10.0.0.3")
    assert hog.try_take(4) and whole.in_use == 10
    late = same.wait(2, lambda: granted.append("late"))
    assert late.whole is not None and not late.done
    assert shares.in_use_by("10.0.0.1") == 4
    same.cancel(late)
    assert shares.in_use_by("10.0.0.1") == 2 and granted == ["same"]
    for budget, amount in ((same, 2), (other, 4), (hog, 4)):
        budget.release(amount)
    assert whole.in_use == 0
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"):
        shares.leave(address)
    assert shares.in_use_by("10.0.0.1") == 0


def test_the_address_rate_gives_each_request_its_turn() -> None:
    now = [0.0]
    rate = AddressRate(rate=2.0, burst=2, max_addresses=2, clock=lambda: now[0])
    assert rate.delay("10.0.0.1") == 0.0
    assert rate.delay("10.0.0.1") == 0.0
    assert rate.delay("10.0.0.1") == 0.5  # the burst is spent: one every half second
    assert rate.delay("10.0.0.1") == 1.0  # turns are promised in order
    assert rate.delay("2001:db8::1") == 0.0  # another address has its own
    now[0] = 10.0
    assert rate.delay("10.0.0.1") == 0.0  # refilled, never above the burst
    assert rate.delay("10.0.0.1") == 0.0
    assert rate.delay("10.0.0.1") == 0.5
