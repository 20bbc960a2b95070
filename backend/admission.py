"""Provides the limits on connections that have not logged in, and the budget of incoming bytes.

* :class:`PreLoginGate` counts the connections that have not logged in, per client address
  (:func:`~backend.addresses.address_key`: an IPv4 address, or an IPv6 /64) and
  server-wide, and turns newcomers away past either cap with the seconds until a place frees
  (the oldest such connection's login deadline). It also holds each connection's deadline,
  which is fixed when the connection is counted: no request moves it.
* :class:`ByteBudget` hands out a server-wide number of bytes first come, first served, and
  :class:`FrameMeter` charges each large incoming message to it from its frame header, before
  its payload is buffered, until its reply is sent: the messages in memory at once cannot take
  more than the budget together.
* :func:`return_freed_memory` makes the C allocator give large buffers back to the system as
  soon as they are freed, so memory used in a burst does not stay with the process.
* :class:`AddressTally` counts every open connection per client address, logged in or not.
* :class:`AddressRate` is a request rate shared by the connections of one client address.

None knows about sockets: the transport asks and acts on the answers.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from http import HTTPStatus

from backend.address_groups import AddressGroups
from backend.addresses import address_key

#: Allocations from this size on get their own memory mapping, unmapped when freed.
LARGE_ALLOCATION = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_freed_memory(threshold: int = LARGE_ALLOCATION) -> bool:
    """Have glibc map buffers of ``threshold`` bytes and more on their own; whether it could.

    glibc raises its mapping threshold up to 32 MiB as large blocks are freed, and then keeps
    freed 16 MiB frames in its heap: a burst of large messages leaves the process gigabytes
    larger long after they are gone. Fixing the threshold gives every large buffer back to the
    system when it is freed, for a few page faults per megabyte. Other C libraries: no effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(threshold)))


@dataclass(frozen=True)
class Refusal:
    """Why a new connection is turned away, and in how many whole seconds to try again."""

    status: HTTPStatus
    reason: str
    retry_after: int


class PreLoginGate:
    """The connections that have not logged in, counted per client address and server-wide.

    Connections are identified by any hashable handle (the transport uses its connection
    objects). Each one counted has a login deadline, ``window`` seconds after it was counted.

    Args:
        per_address: Connections not logged in one client address may have.
        total: Connections not logged in the server may have.
        window: Seconds a connection has to log in.
        clock: Monotonic seconds (tests pass their own).
        on_evict: Closes a connection the gate stopped counting to make room for a newcomer
            (see :meth:`admit`).
    """

    def __init__(
        self,
        *,
        per_address: int,
        total: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.per_address = per_address
        self._on_evict = on_evict
        self.total = total
        self.window = window
        self._clock = clock
        # Oldest first: every deadline is "counted at + window", so insertion order is deadline
        # order and the first entry says when the next place frees.
        self._deadlines: AddressGroups[Hashable, float] = AddressGroups()
        #: Connections closed to make room for a newcomer from a less busy address.
        self.evicted = 0

    @property
    def count(self) -> int:
        """How many connections are counted as not logged in."""
        return len(self._deadlines)

    def count_from(self, address: str) -> int:
        """How many connections not logged in share ``address``'s key."""
        return self._deadlines.count(address_key(address))

    def deadline(self, handle: Hashable) -> float | None:
        """When ``handle`` must have logged in (clock seconds), or ``None`` if not counted."""
        return self._deadlines.get(handle)

    def admit(self, handle: Hashable, address: str) -> Refusal | None:
        """Count a new connection from ``address``, or say why it is refused (then uncounted).

        Args:
            handle: The connection.
            address: The peer's IP address as text.
        """
        key = address_key(address)
        now = self._clock()
        same_key = self._deadlines.count(key)
        first_deadline = self._deadlines.oldest_of(key)
        if first_deadline is not None and same_key >= self.per_address:
            return Refusal(
                HTTPStatus.TOO_MANY_REQUESTS,
                "Too many connections from your address have not logged in\n",
                self._seconds_until(first_deadline, now),
            )
        if len(self._deadlines) >= self.total:
            # Full: make room by closing the oldest waiting connection of the address that has
            # the most, if that is more than the newcomer's would have. Otherwise attackers on a
            # few dozen addresses, re-connecting as their deadlines pass, would hold every place
            # and turn away each person who has not logged in yet (a restarted TUI included).
            victim = self._deadlines.busiest_oldest(same_key + 1)
            if victim is None or self._on_evict is None:
                return Refusal(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "Too many connections have not logged in\n",
                    self._seconds_until(self._deadlines.oldest(), now),
                )
            self.release(victim[0])
            self.evicted += 1
            self._on_evict(victim[0])
        self._deadlines.add(handle, key, now + self.window)
        return None

    def rejoin(self, handle: Hashable, address: str) -> float:
        """Count an open connection again (it logged out), with a new deadline; never refused.

        Returns:
            The new deadline.
        """
        self.release(handle)
        deadline = self._clock() + self.window
        self._deadlines.add(handle, address_key(address), deadline)
        return deadline

    def release(self, handle: Hashable) -> None:
        """Stop counting ``handle`` (it logged in or closed); nothing if it was not counted."""
        self._deadlines.pop(handle)

    @staticmethod
    def _seconds_until(deadline: float, now: float) -> int:
        # Whole seconds for the Retry-After header, at least one so no client spins.
        return max(1, math.ceil(deadline - now))


class AddressTally:
    """Open connections per client address (:func:`~backend.addresses.address_key`).

    Logged in or not: once logged in, a connection leaves the pre-login gate's count, and one
    account resumed on connection after connection could otherwise take every place the
    server has. Connections are identified by any hashable handle.

    Args:
        per_address: Connections one client address may have open.
    """

    def __init__(self, *, per_address: int) -> None:
        self.per_address = per_address
        self._keys: dict[Hashable, str] = {}
        self._counts: dict[str, int] = {}

    def count_from(self, address: str) -> int:
        """How many connections ``address``'s key has open."""
        return self._counts.get(address_key(address), 0)

    def admit(self, handle: Hashable, address: str) -> Refusal | None:
        """Count ``handle`` from ``address``, or say why not (then it is not counted)."""
        key = address_key(address)
        if handle in self._keys:
            return None
        if self._counts.get(key, 0) >= self.per_address:
            # No deadline frees a place: a connection ends when its client leaves.
            return Refusal(
                HTTPStatus.TOO_MANY_REQUESTS, "Too many connections from your address\n", 5
            )
        self._keys[handle] = key
        self._counts[key] = self._counts.get(key, 0) + 1
        return None

    def release(self, handle: Hashable) -> None:
        """Stop counting ``handle`` (it closed); nothing if it was not counted."""
        key = self._keys.pop(handle, None)
        if key is None:
            return
        left = self._counts[key] - 1
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]


class ByteBudget:
    """A number of bytes handed out first come, first served.

    A caller takes bytes at once if they fit and nobody waits before it (:meth:`try_take`), or
    queues with a callback that runs, synchronously inside :meth:`release`, once they are
    taken for it (:meth:`wait`). The queue is strict: nobody passes those already waiting, so
    a large amount is not starved by a stream of small ones. Amounts never exceed the budget.

    Args:
        capacity: The budget in bytes.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"the budget must be positive, not {capacity}")
        self.capacity = capacity
        #: Bytes handed out and not yet released.
        self.in_use = 0
        #: The most ever handed out at once (for tests and benchmarks).
        self.peak = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        """How many callers wait for bytes."""
        return len(self._waiters)

    def try_take(self, amount: int) -> bool:
        """Take ``amount`` bytes if they fit now and nobody is waiting; whether it did."""
        self._check(amount)
        if self._waiters or self.in_use + amount > self.capacity:
            return False
        self._take(amount)
        return True

    def wait(self, amount: int, granted: Callable[[], None]) -> _Waiter:
        """Queue for ``amount`` bytes; ``granted`` runs once they are taken for the caller.

        Returns:
            A handle for :meth:`cancel`.
        """
        self._check(amount)
        waiter = _Waiter(amount, granted)
        self._waiters.append(waiter)
        self._grant()
        return waiter

    def cancel(self, waiter: _Waiter) -> None:
        """Leave the queue (nothing if ``waiter`` was granted already)."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
            # The head of the queue may have changed and fit now.
            self._grant()

    def release(self, amount: int) -> None:
        """Give back ``amount`` bytes taken earlier."""
        self.in_use -= amount
        self._grant()

    def _check(self, amount: int) -> None:
        if not 0 <= amount <= self.capacity:
            raise ValueError(f"{amount} bytes do not fit a budget of {self.capacity}")

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)

    def _grant(self) -> None:
        while self._waiters and self.in_use + self._waiters[0].amount <= self.capacity:
            waiter = self._waiters.popleft()
            self._take(waiter.amount)
            waiter.done = True
            waiter.granted()


@dataclass(eq=False)
class _Waiter:
    amount: int
    granted: Callable[[], None]
    #: The bytes were taken for it.
    done: bool = False


@dataclass(eq=False)
class _ShareWaiter:
    """Waits for its address's share, then for the whole budget."""

    amount: int
    share: _Waiter | None = None
    whole: _Waiter | None = None
    #: Both were taken for it.
    done: bool = False


class AddressRate:
    """A request rate per client address, shared by its connections.

    The transport asks it before it reads a request sent before login, and waits as long as
    it says, reading nothing else from that connection meanwhile (the peer meets TCP
    back-pressure, and no refusal has to be encoded and sent): each connection has its own
    rate, and an address's 32 connections not logged in sent 32 times as many requests
    (3,000 a second of Resume with made-up tokens took a core and a normal login to 1.3 s).

    Args:
        rate: Requests per second one address may send.
        burst: Requests it may send at once after a quiet spell.
        max_addresses: Addresses remembered, the least recently seen dropped first (a dropped
            address starts again with a full burst).
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max = max_addresses
        self._clock = clock
        #: Per address key: tokens (negative: requests already promised a later turn), when.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def delay(self, address: str) -> float:
        """Take ``address``'s next turn; the seconds to wait until it comes (0: at once)."""
        key = address_key(address)
        now = self._clock()
        tokens, updated = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate) - 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return 0.0 if tokens >= 0.0 else -tokens / self.rate


class BudgetShare:
    """One client address's share of a :class:`ByteBudget`, used like a budget of its own.

    Bytes are taken from the address's share first, then from the whole budget, always in
    that order, so connections waiting on each other cannot deadlock; released, they go back
    to both. Connections from one address thus hold at most ``share.capacity`` bytes of the
    whole: large messages that never finish (a fragment never followed, a frame sent a byte
    at a time) from one address no longer starve everyone's uploads.

    Args:
        share: The address's own budget (shared by all its connections).
        whole: The server-wide budget.
    """

    def __init__(self, share: ByteBudget, whole: ByteBudget) -> None:
        self.share = share
        self.whole = whole
        self.capacity = min(share.capacity, whole.capacity)

    def try_take(self, amount: int) -> bool:
        """Take ``amount`` from both if it fits both now and nobody waits; whether it did."""
        if not self.share.try_take(amount):
            return False
        if self.whole.try_take(amount):
            return True
        self.share.release(amount)
        return False

    def wait(self, amount: int, granted: Callable[[], None]) -> _ShareWaiter:
        """Queue for ``amount`` (share first, then the whole); ``granted`` once both are taken."""
        waiter = _ShareWaiter(amount)

        def whole_granted() -> None:
            waiter.done = True
            granted()

        def share_granted() -> None:
            waiter.whole = self.whole.wait(amount, whole_granted)

        waiter.share = self.share.wait(amount, share_granted)
        return waiter

    def cancel(self, waiter: _ShareWaiter) -> None:
        """Leave the queues (nothing if ``waiter`` was granted already)."""
        if waiter.done:
            return
        if waiter.whole is not None:
            self.whole.cancel(waiter.whole)
            self.share.release(waiter.amount)  # the share was taken for it
        elif waiter.share is not None:
            self.share.cancel(waiter.share)

    def release(self, amount: int) -> None:
        """Give back ``amount`` bytes taken earlier."""
        self.whole.release(amount)
        self.share.release(amount)


class BudgetShares:
    """The per-address shares of one budget, each kept while a connection of its address is.

    Args:
        whole: The server-wide budget.
        per_address: Bytes of it one client address may hold.
    """

    def __init__(self, whole: ByteBudget, per_address: int) -> None:
        self.whole = whole
        self.per_address = min(per_address, whole.capacity)
        self._shares: dict[str, tuple[ByteBudget, int]] = {}

    def join(self, address: str) -> BudgetShare:
        """The share of ``address``'s key, for one more connection; :meth:`leave` it after."""
        key = address_key(address)
        share, users = self._shares.get(key, (None, 0))
        if share is None:
            share = ByteBudget(self.per_address)
        self._shares[key] = (share, users + 1)
        return BudgetShare(share, self.whole)

    def leave(self, address: str) -> None:
        """One connection of ``address`` is gone (its charges given back)."""
        key = address_key(address)
        share, users = self._shares.get(key, (None, 0))
        if share is None:
            return
        if users > 1:
            self._shares[key] = (share, users - 1)
        else:
            del self._shares[key]

    def in_use_by(self, address: str) -> int:
        """Bytes ``address``'s key holds now."""
        share, _ = self._shares.get(address_key(address), (None, 0))
        return share.in_use if share is not None else 0

    def waiting_from(self, address: str) -> int:
        """How many of ``address``'s key's messages wait for its share."""
        share, _ = self._shares.get(address_key(address), (None, 0))
        return share.waiting if share is not None else 0


#: Opcode bit of control frames (close, ping, pong): 125 bytes at most, never part of a message.
_CONTROL = 0x8
_CONTINUATION = 0x0


class FrameMeter:
    """Charges the large messages of one connection to a :class:`ByteBudget` from their headers.

    It sits between the decrypted byte stream and websockets: it reads only the frame headers,
    passes every byte on unchanged and in order, and holds back a message's payload until the
    message is charged, so websockets never buffers more of it than the budget allows. While it
    waits, it asks for reading from the socket to stop; the sender meets TCP back-pressure.

    A one-frame message is charged its size, times ``copies`` (the decoded message besides its
    frame), never more than the whole budget. A fragmented message does not announce its size,
    so its first frame reserves the largest message allowed and its last frame gives back what
    it did not use: a connection never waits in the middle of a message while holding part of
    one, which could otherwise deadlock connections waiting on each other. Messages up to
    ``free_bytes`` are not charged. Each complete message's charge is handed, in order, to
    whoever reads the message (:meth:`take`), who releases it once done with it.

    The stream starts with the HTTP upgrade request, passed on unread up to its blank line.

    Args:
        budget: The server-wide budget.
        free_bytes: Messages up to this size are not charged.
        limit: The largest message the connection accepts right now (websockets cuts larger
            ones from their header, so they are not charged).
        feed: Passes bytes on to websockets.
        pause: Called with ``True`` to stop reading from the socket, ``False`` to go on.
        call_soon: Schedules a callback (the event loop's); a grant resumes the stream from
            there, not from inside whatever released the bytes.
        copies: How many times a message's bytes are charged: by default its frame and the
            decoded message, which copies its byte fields and lives as long as the frame.
    """

    def __init__(
        self,
        budget: ByteBudget | BudgetShare,
        *,
        free_bytes: int,
        limit: Callable[[], int | None],
        feed: Callable[[bytes], None],
        pause: Callable[[bool], None],
        call_soon: Callable[[Callable[[], None]], object],
        copies: int = 2,
    ) -> None:
        self._budget = budget
        self._free = free_bytes
        self._copies = copies
        self._limit = limit
        self._feed = feed
        self._pause = pause
        self._call_soon = call_soon
        self._in_request = True
        self._request_tail = b""
        self._header = bytearray()
        self._payload_left = 0
        self._message_bytes = 0
        self._message_charge = 0
        #: The charges of complete messages not yet taken, oldest first.
        self._charges: deque[int] = deque()
        #: Bytes held back until the next message is charged, and how it was charged.
        self._held: bytearray | None = None
        self._pending: tuple[int, bool, int, int] | None = None
        self._waiter: _Waiter | _ShareWaiter | None = None
        self._closed = False

    @property
    def holding(self) -> bool:
        """Whether the stream is held back, waiting for the budget."""
        return self._held is not None

    @property
    def queued(self) -> int:
        """How many messages are charged (or free) and not taken yet."""
        return len(self._charges)

    def receive(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        if self._held is not None:
            # Bytes already decrypted when reading stopped: kept in order behind the rest.
            self._held += data
            return
        self._walk(data)

    def take(self) -> int:
        """The charge of the oldest complete message not taken yet (0 if none); release it."""
        return self._charges.popleft() if self._charges else 0

    def release(self, amount: int) -> None:
        """Give back a charge :meth:`take` handed out, to the budget it was taken from."""
        if amount:
            self._budget.release(amount)

    def close(self) -> None:
        """The connection is gone: give back every charge not taken, leave the queue."""
        self._closed = True
        if self._waiter is not None and not self._waiter.done:
            # Still queued: nothing was taken for it.
            self._budget.cancel(self._waiter)  # type: ignore[arg-type]  # its own kind
            self._pending = None
        self._waiter = None
        # A grant not yet acted on is given back by _resume.
        held = sum(self._charges) + self._message_charge
        self._charges.clear()
        self._message_charge = 0
        if held:
            self._budget.release(held)
        self._held = None

    def _walk(self, data: bytes | bytearray) -> None:
        size = len(data)
        pos = 0
        if self._in_request:
            seen = self._request_tail + bytes(data)
            end = seen.find(b"\r\n\r\n")
            if end < 0:
                self._request_tail = seen[-3:]
                self._feed(bytes(data))
                return
            self._in_request = False
            pos = end + 4 - len(self._request_tail)
            self._request_tail = b""
        while pos < size:
            if self._payload_left:
                step = min(self._payload_left, size - pos)
                self._payload_left -= step
                pos += step
                continue
            # A header, perhaps split across reads: its size is known from its second byte.
            take = min(self._header_size() - len(self._header), size - pos)
            self._header += data[pos : pos + take]
            pos += take
            if len(self._header) < self._header_size():
                continue
            opcode, fin, length = self._parse_header()
            self._payload_left = length
            charge = self._charge_for(opcode, fin, length)
            if charge and not self._budget.try_take(charge):
                # Pass on the header, hold back the payload, stop reading until it fits.
                if pos:
                    self._feed(bytes(data[:pos]))
                self._held = bytearray(data[pos:])
                self._pending = (opcode, fin, length, charge)
                self._pause(True)
                self._waiter = self._budget.wait(charge, self._granted)
                return
            self._count(opcode, fin, length, charge)
        if data:
            self._feed(bytes(data))

    def _granted(self) -> None:
        self._call_soon(self._resume)

    def _resume(self) -> None:
        pending, held = self._pending, self._held
        self._pending, self._held, self._waiter = None, None, None
        if pending is None:
            return
        opcode, fin, length, charge = pending
        if self._closed or held is None:
            self._budget.release(charge)
            return
        self._count(opcode, fin, length, charge)
        self._walk(held)
        if self._held is None:
            self._pause(False)

    def _header_size(self) -> int:
        if len(self._header) < 2:
            return 2
        second = self._header[1]
        extended = {126: 2, 127: 8}.get(second & 0x7F, 0)
        return 2 + extended + (4 if second & 0x80 else 0)

    def _parse_header(self) -> tuple[int, bool, int]:
        header = self._header
        fin, opcode, short = bool(header[0] & 0x80), header[0] & 0x0F, header[1] & 0x7F
        if short == 126:
            length = int.from_bytes(header[2:4], "big")
        elif short == 127:
            length = int.from_bytes(header[2:10], "big")
        else:
            length = short
        self._header = bytearray()
        return opcode, fin, length

    def _charge_for(self, opcode: int, fin: bool, length: int) -> int:
        """What to charge before the payload of this frame is passed on."""
        if opcode & _CONTROL or opcode == _CONTINUATION:
            return 0  # control frames are tiny; a fragmented message is charged at its start
        limit = self._limit()
        # A one-frame message is charged its size; a fragmented one the most it may grow to.
        size = length if fin else (limit if limit is not None else self._budget.capacity)
        if size <= self._free or (limit is not None and length > limit):
            return 0  # small, or cut by websockets from this header
        return min(size * self._copies, self._budget.capacity)

    def _count(self, opcode: int, fin: bool, length: int, charge: int) -> None:
        if opcode & _CONTROL:
            return
        self._message_charge += charge
        self._message_bytes += length
        if not fin:
            return
        charge = self._message_charge
        if opcode == _CONTINUATION and charge:
            # The end of a fragmented message: keep what it used, give back the rest.
            used = self._message_bytes if self._message_bytes > self._free else 0
            used = min(used * self._copies, self._budget.capacity)
            if used < charge:
                self._budget.release(charge - used)
                charge = used
        self._charges.append(charge)
        self._message_charge = 0
        self._message_bytes = 0
