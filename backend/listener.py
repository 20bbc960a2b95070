"""Provides the listening socket that bounds connections still in their TLS or HTTP handshake.

A connection costs the server a socket and TLS buffers (asyncio gives each a 256 KiB read
buffer) from the moment it is accepted, long before the pre-login gate
(:class:`~backend.admission.PreLoginGate`) can count it: that gate sees a connection only once
its TLS handshake is done. Without a bound, one address opening thousands of TCP connections
that never finish TLS (or finish it and never send the upgrade request) held gigabytes for the
handshake timeouts. :class:`HandshakeSlots` counts the connections accepted and not yet past
their upgrade request, per client address (:func:`~backend.addresses.address_key`) and
server-wide; :func:`bind_listener` makes the listening socket that asks it on every accept and
resets a refused connection at once, before any TLS work.

A slot is given back when the connection's upgrade request is read (:meth:`HandshakeSlots.
passed`), or when its socket is closed (the handshake failed or timed out), whichever is first.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, ClassVar

from backend.address_groups import AddressGroups
from backend.addresses import address_key

#: SO_LINGER on, zero seconds: close() resets the connection, leaving no TIME_WAIT behind.
_RESET = struct.pack("ii", 1, 0)


class HandshakeSlots:
    """Connections accepted and not yet past their upgrade request, per address and in all.

    Connections are named by their peer address tuple (as ``accept`` returns it). When every
    slot is taken, a newcomer takes the oldest slot of the busiest address, if that address
    holds more than the newcomer's would; that connection is shut down. Attackers on many
    addresses thus cannot hold every slot against a client from an address of its own.

    Args:
        per_address: Slots one client address may hold.
        total: Slots in all.
    """

    def __init__(self, *, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self._slots: AddressGroups[Any, socket.socket] = AddressGroups()
        #: Connections refused at accept, and connections shut down to make room.
        self.refused = 0
        self.evicted = 0

    @property
    def count(self) -> int:
        """How many connections hold a slot."""
        return len(self._slots)

    def count_from(self, address: str) -> int:
        """How many connections from ``address``'s key hold a slot."""
        return self._slots.count(address_key(address))

    def take(self, peer: Any, conn: socket.socket) -> bool:
        """Give the accepted connection ``conn`` from ``peer`` a slot; whether there was one."""
        key = address_key(str(peer[0]) if isinstance(peer, tuple) and peer else "?")
        same_key = self._slots.count(key)
        if same_key >= self.per_address:
            self.refused += 1
            return False
        if len(self._slots) >= self.total and not self._evict(same_key + 1):
            self.refused += 1
            return False
        self._slots.add(peer, key, conn)
        return True

    def passed(self, peer: Any) -> None:
        """``peer``'s connection is past its handshake (or closed): give its slot back."""
        self._slots.pop(peer)

    def _evict(self, newcomer_count: int) -> bool:
        victim = self._slots.busiest_oldest(newcomer_count)
        if victim is None:
            return False
        peer, conn = victim
        self.passed(peer)
        self.evicted += 1
        # The event loop sees the end of the stream and closes the connection as any other.
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone
        return True


class _Accepted(socket.socket):
    """An accepted connection that gives its handshake slot back when it is closed."""

    slots: ClassVar[HandshakeSlots | None] = None
    peer: Any = None

    def close(self) -> None:
        if self.slots is not None and self.peer is not None:
            self.slots.passed(self.peer)
        super().close()


class _Listener(socket.socket):
    """A listening socket whose ``accept`` (which the event loop calls) asks the slots."""

    slots: ClassVar[HandshakeSlots]
    accepted: ClassVar[type[_Accepted]]

    def accept(self) -> tuple[socket.socket, Any]:
        # Refused connections are reset and the next one taken, until one gets a slot or
        # none is waiting (BlockingIOError, which the event loop expects).
        while True:
            fd, peer = self._accept()  # type: ignore[attr-defined]
            conn = self.accepted(self.family, self.type, self.proto, fileno=fd)
            if self.slots.take(peer, conn):
                conn.peer = peer
                if socket.getdefaulttimeout() is None and self.gettimeout():
                    conn.setblocking(True)  # as socket.accept does
                return conn, peer
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            conn.close()


def bind_listener(host: str, port: int, slots: HandshakeSlots, backlog: int = 100) -> socket.socket:
    """A socket listening on ``host:port`` whose accepted connections take ``slots``.

    ``host`` may be a name: the first address it resolves to is bound, IPv4 first (a server
    bound to one name answers on one address). An empty host or ``::`` listens on every IPv6
    and IPv4 address where the system allows one socket for both.

    Raises:
        OSError: The address cannot be resolved or bound (e.g. the port is taken).
    """

    class Accepted(_Accepted):
        pass

    class Listener(_Listener):
        pass

    Accepted.slots = slots
    Listener.slots = slots
    Listener.accepted = Accepted
    dual_stack = host in ("", "::") and socket.has_dualstack_ipv6()
    address: tuple[Any, ...]
    if dual_stack:
        family, address = socket.AF_INET6, ("::", port)
    else:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = min(infos, key=lambda info: info[0] != socket.AF_INET)
    # IPPROTO_TCP, not 0: accepted sockets inherit it, and asyncio turns Nagle's algorithm off
    # only on sockets that say they are TCP (else every small reply waits for delayed ACKs).
    sock = Listener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
