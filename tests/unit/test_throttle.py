"""Unit tests of the failed-login throttle, driven by a fake clock.

Proves that an account or an address is locked out once its failures inside the sliding window
reach the limit (and not before), that the lockout lasts exactly ``lockout`` seconds and reports
the remaining time as ``retry_after``, that failures older than the window are forgotten, that a
success clears the account's failures but not the address's, that keys do not leak into one
another, and that the table of keys is pruned instead of growing without bound. Attempts
reserved before their password check count against the limit until they settle; sign-ups are
limited per address (an IPv6 /64) and in total, in a sliding window.
"""

from __future__ import annotations

import pytest

from backend.accounts.throttle import IN_PROGRESS_RETRY, LoginThrottle, SignupLimiter
from backend.addresses import address_key
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
    throttle.succeeded("erin", "10.0.0.1")
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


# -- reservations: attempts in progress count ---------------------------------------------------


def test_attempts_in_progress_count_against_the_limit(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=3)
    attempts = [throttle.reserve("kim", "10.0.0.1") for _ in range(3)]
    # None has settled, yet a fourth may not start: it could be the one past the limit.
    with pytest.raises(RateLimited) as caught:
        throttle.reserve("kim", "10.0.0.1")
    assert caught.value.retry_after == IN_PROGRESS_RETRY
    for attempt in attempts:
        attempt.failed()
    with pytest.raises(RateLimited) as locked:
        throttle.check("kim", "10.0.0.1")
    assert locked.value.retry_after == 30.0


def test_a_released_attempt_counts_nothing(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=2)
    for _ in range(5):
        throttle.reserve("lena", "10.0.0.1").release()
    fail(throttle, "lena", times=1)
    throttle.check("lena", "10.0.0.1")  # one failure: allowed


def test_an_attempt_settles_once(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=2)
    attempt = throttle.reserve("mia", "10.0.0.1")
    attempt.failed()
    attempt.failed()  # e.g. the ``finally`` after an explicit failure
    attempt.release()
    throttle.check("mia", "10.0.0.1")  # one failure, nothing pending


def test_a_success_among_attempts_in_progress_keeps_their_count(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=3, per_address=100)
    right = throttle.reserve("noor", "10.0.0.1")
    wrong = [throttle.reserve("noor", "10.0.0.1") for _ in range(2)]
    right.succeeded()
    # The two still in progress hold their places: one more fits, not three (from another
    # address: the one that logged in now has its own count for the account).
    extra = throttle.reserve("noor", "10.0.0.2")
    with pytest.raises(RateLimited):
        throttle.reserve("noor", "10.0.0.2")
    for attempt in [*wrong, extra]:
        attempt.failed()
    with pytest.raises(RateLimited):
        throttle.check("noor", "10.0.0.2")


def test_keys_with_attempts_in_progress_survive_pruning(clock: FakeClock) -> None:
    throttle = make_throttle(clock, per_account=1, per_address=100, max_keys=2)
    attempt = throttle.reserve("olga", "10.0.4.1")
    clock.advance(3600.0)
    fail(throttle, "pete", address="10.0.4.2")  # prunes
    with pytest.raises(RateLimited):
        throttle.reserve("olga", "10.0.4.9")
    attempt.failed()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("?", "?"),
    ],
)
def test_address_keys(address: str, key: str) -> None:
    assert address_key(address) == key


# -- sign-ups ------------------------------------------------------------------------------------


def make_signups(clock: FakeClock, *, per_address: int = 2, total: int = 3) -> SignupLimiter:
    return SignupLimiter(max_per_address=per_address, max_total=total, window=3600.0, clock=clock)


def test_sign_ups_are_limited_per_address_and_in_total(clock: FakeClock) -> None:
    signups = make_signups(clock)
    signups.reserve("10.0.0.1")
    clock.advance(600.0)
    signups.reserve("10.0.0.1")
    with pytest.raises(RateLimited, match="from your address") as own:
        signups.reserve("10.0.0.1")
    assert own.value.retry_after == 3000.0  # when the first slides out of the hour
    signups.reserve("10.0.0.2")
    with pytest.raises(RateLimited, match="on this server"):
        signups.reserve("10.0.0.3")
    clock.advance(3000.0)
    signups.reserve("10.0.0.1")


def test_a_released_sign_up_gives_its_slot_back(clock: FakeClock) -> None:
    signups = make_signups(clock, per_address=1, total=10)
    signups.reserve("10.0.0.1").release()
    slot = signups.reserve("10.0.0.1")
    with pytest.raises(RateLimited):
        signups.reserve("10.0.0.1")
    slot.release()
    slot.release()  # once only
    signups.reserve("10.0.0.1")


def test_strangers_cannot_lock_the_owner_out_where_they_logged_in(clock: FakeClock) -> None:
    """Five wrong guesses from anywhere locked the account for everyone, its owner included;
    repeated every lockout, that kept the owner out for as long as the stranger liked."""
    throttle = make_throttle(clock, per_account=3, per_address=100)
    throttle.reserve("quinn", "10.0.0.1").succeeded()  # the owner's usual address
    fail(throttle, "quinn", address="192.0.2.1", times=3)
    with pytest.raises(RateLimited):
        throttle.check("quinn", "192.0.2.2")  # locked for strangers
    throttle.check("quinn", "10.0.0.1")  # not for the owner's address
    # That address has the account's limit of its own: a guesser sharing it is stopped.
    fail(throttle, "quinn", address="10.0.0.1", times=3)
    with pytest.raises(RateLimited):
        throttle.check("quinn", "10.0.0.1")
    # Remembered for a while only.
    clock.advance(31 * 24 * 3600.0)
    assert not throttle.knows("quinn", "10.0.0.1")


def test_known_addresses_are_bounded(clock: FakeClock) -> None:
    throttle = make_throttle(clock, max_keys=2)
    for n in range(3):
        throttle.reserve("rose", f"10.0.1.{n}").succeeded()
    assert not throttle.knows("rose", "10.0.1.0")
    assert throttle.knows("rose", "10.0.1.1") and throttle.knows("rose", "10.0.1.2")
