"""Unit tests for the handshake slots and the listening socket that asks them on accept."""

from __future__ import annotations

import socket

import pytest

from backend.listener import HandshakeSlots, bind_listener


def _conn() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_slots_are_bounded_per_address_and_in_all() -> None:
    slots = HandshakeSlots(per_address=2, total=3)
    held = [_conn() for _ in range(4)]
    try:
        assert slots.take(("10.0.0.1", 1), held[0])
        assert slots.take(("10.0.0.1", 2), held[1])
        assert not slots.take(("10.0.0.1", 3), held[2])  # its address is full
        assert slots.take(("10.0.0.2", 1), held[2])
        # Full: a third address takes the place of the busiest address's oldest.
        assert slots.take(("10.0.0.3", 1), held[3])
        assert (slots.count, slots.evicted, slots.refused) == (3, 1, 1)
        assert slots.count_from("10.0.0.1") == 1
        # Full again, and no address holds more than the newcomer's would: refused.
        assert not slots.take(("10.0.0.4", 1), _conn())
        slots.passed(("10.0.0.2", 1))
        slots.passed(("10.0.0.2", 1))  # twice is fine
        assert slots.count == 2 and slots.count_from("10.0.0.2") == 0
    finally:
        for conn in held:
            conn.close()


def test_ipv6_clients_share_the_slots_of_their_64() -> None:
    slots = HandshakeSlots(per_address=1, total=10)
    assert slots.take(("2001:db8::1", 1, 0, 0), _conn())
    assert not slots.take(("2001:db8::2", 1, 0, 0), _conn())


def test_accepted_connections_are_tcp_and_give_their_slot_back_when_closed() -> None:
    slots = HandshakeSlots(per_address=1, total=10)
    listener = bind_listener("127.0.0.1", 0, slots)
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        conn, peer = listener.accept()
        # asyncio turns Nagle's algorithm off only on sockets that say they are TCP.
        assert conn.proto == socket.IPPROTO_TCP
        assert slots.count_from("127.0.0.1") == 1
        # The second is past the address's share: reset, and nothing left to accept.
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
        assert slots.refused == 1
        conn.close()
        assert slots.count == 0 and peer[0] == "127.0.0.1"
    finally:
        for client in clients:
            client.close()
        listener.close()
