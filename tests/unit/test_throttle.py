"""Unit tests of the failed-login throttle, driven by a fake clock.

Proves that an account or an address is locked out once its failures inside the sliding window
reach the limit (and not before), that the lockout lasts exactly ``lockout`` seconds and reports
the remaining time as ``retry_after``, that failures older than the window are forgotten, that a
success clears the account's failures but not the address's, that keys do not leak into one
another, and that the table of keys is pruned instead of growing without bound.
"""

from __future__ import annotations

import pytest

from backend.accounts.throttle import LoginThrottle
from protocol.errors import RateLimited


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_throttle(
    clock: FakeClock,
    *,
    per_account: int = 3,
    per_address: int = 10,
    window: float = 60.0,
    lockout: float = 30.0,
    max_keys: int = 100_000,
) -> LoginThrottle:
    return LoginThrottle(
        max_per_account=per_account,
        max_per_address=per_address,
        window=window,
        lockout=lockout,
        clock=clock,
        max_keys=max_keys,
    )


def fail(throttle: LoginThrottle, account: str, address: str = "10.0.0.1", times: int = 1) -> None:
    for _ in range(times):
        throttle.check(account, address)
        throttle.failed(account, address)


def test_the_account_is_locked_at_the_limit_and_not_before(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=3)
    fail(throttle, "alice", times=2)
    throttle.check("alice", "10.0.0.1")  # two failures: still allowed
    throttle.failed("alice", "10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after == 30.0
    assert "30 seconds" in caught.value.message


def test_the_lockout_lasts_exactly_its_duration(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=2, lockout=30.0)
    fail(throttle, "bob", times=2)
    clock.advance(29.5)
    with pytest.raises(RateLimited) as caught:
        throttle.check("bob", "10.0.0.1")
    assert caught.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    throttle.check("bob", "10.0.0.1")  # over


def test_after_a_lockout_the_count_starts_again(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=2, lockout=10.0)
    fail(throttle, "carol", times=2)
    clock.advance(10.0)
    fail(throttle, "carol", times=1)
    throttle.check("carol", "10.0.0.1")  # one failure after the lockout: allowed
    fail(throttle, "carol", times=1)
    with pytest.raises(RateLimited):
        throttle.check("carol", "10.0.0.1")


def test_failures_outside_the_window_are_forgotten(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=3, window=60.0)
    fail(throttle, "dave", times=2)
    clock.advance(61.0)
    fail(throttle, "dave", times=2)  # the first two slid out of the window
    throttle.check("dave", "10.0.0.1")
    fail(throttle, "dave", times=1)
    with pytest.raises(RateLimited):
        throttle.check("dave", "10.0.0.1")


def test_the_address_is_locked_across_accounts(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=100, per_address=4)
    for name in ("a1", "a2", "a3", "a4"):
        fail(throttle, name, address="192.0.2.7")
    with pytest.raises(RateLimited):
        throttle.check("a-new-account", "192.0.2.7")
    # The accounts themselves are not locked: from elsewhere they may try.
    throttle.check("a1", "198.51.100.1")


def test_a_success_clears_the_account_but_not_the_address(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=3, per_address=5)
    fail(throttle, "erin", times=2)
    throttle.succeeded("erin")
    fail(throttle, "erin", times=2)
    throttle.check("erin", "10.0.0.1")  # 2 since the success: allowed
    # ... but the address kept all four, and the fifth locks it.
    fail(throttle, "someone-else", times=1)
    with pytest.raises(RateLimited):
        throttle.check("erin", "10.0.0.1")


def test_keys_are_independent(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=2, per_address=100)
    fail(throttle, "frank", times=2)
    with pytest.raises(RateLimited):
        throttle.check("frank", "10.0.0.1")
    throttle.check("grace", "10.0.0.1")
    # An account and an address that happen to have the same text are different keys.
    throttle.check("10.0.0.1", "frank")


def test_retry_after_is_rounded_to_a_tenth(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=1, lockout=10.0)
    fail(throttle, "heidi")
    clock.advance(3.14159)
    with pytest.raises(RateLimited) as caught:
        throttle.check("heidi", "10.0.0.1")
    assert caught.value.retry_after == 6.9


def test_stale_keys_are_pruned_when_the_table_is_full(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=100, per_address=100, window=60.0, max_keys=10)
    for index in range(5):  # 5 accounts + 5 addresses = 10 keys
        fail(throttle, f"old{index}", address=f"10.0.1.{index}")
    assert len(throttle._failures) == 10
    clock.advance(61.0)
    fail(throttle, "new", address="10.0.2.1")
    assert set(throttle._failures) == {("account", "new"), ("address", "10.0.2.1")}


def test_locked_keys_survive_pruning(clock: FakeClock) -> None:
    throttle = make_throttle(
        clock, per_account=1, per_address=100, window=5.0, lockout=60.0, max_keys=2
    )
    fail(throttle, "ivan", address="10.0.3.1")  # locks the account
    clock.advance(10.0)  # past the window, inside the lockout
    fail(throttle, "judy", address="10.0.3.2")  # prunes
    with pytest.raises(RateLimited):
        throttle.check("ivan", "10.0.3.9")
