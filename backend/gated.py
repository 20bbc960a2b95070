"""Provides :class:`GatedConnection`: the websockets server connection with the admission limits.

From the end of its TLS handshake a connection is counted by the pre-login gate (and refused,
uncounted, past its caps), and its decrypted byte stream passes a
:class:`~backend.admission.FrameMeter` that charges large messages to the server-wide budget
before websockets buffers them. Both websockets (its queue of frames is full) and the meter (the
budget is spent) may stop reading from the socket; :class:`SharedReading` reads again only when
neither does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, cast

from websockets.asyncio.server import ServerConnection
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Event
from websockets.server import ServerProtocol

from backend.admission import (
    AddressTally,
    BudgetShare,
    BudgetShares,
    ByteBudget,
    FrameMeter,
    PreLoginGate,
    Refusal,
)


class SharedReading(asyncio.Transport):
    """A transport whose reading is paused while any of its users wants it paused.

    websockets pauses and resumes its transport as its queue of frames fills and drains, and
    would resume reading while the byte budget still wants it stopped; through this wrapper
    each has its own say (:meth:`hold`). Everything else goes to the wrapped transport.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._holds: set[str] = set()

    def hold(self, reason: str, paused: bool) -> None:
        """Stop reading for ``reason`` (``paused``) or lift that reason; read if none is left."""
        was_paused = bool(self._holds)
        if paused:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        if bool(self._holds) != was_paused and not self._transport.is_closing():
            if self._holds:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def pause_reading(self) -> None:
        self.hold("websockets", True)

    def resume_reading(self) -> None:
        self.hold("websockets", False)

    def is_reading(self) -> bool:
        return not self._holds and self._transport.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview[Any]]) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def abort(self) -> None:
        self._transport.abort()


class GatedConnection(ServerConnection):
    """A server connection under the pre-login gate and the byte budget.

    The gate is asked in ``connection_made``, the first moment the peer's address is known
    (asyncio runs the TLS handshake before it): a refused connection is not counted and is
    answered by the transport's ``process_request``. ``connection_lost`` always follows, so
    whatever happens to the handshake, the count and the charges are given back.

    Use :func:`connection_class` for a subclass bound to one server's gate and budget.
    """

    gate: ClassVar[PreLoginGate | None] = None
    budget: ClassVar[ByteBudget | None] = None
    #: Each client address's share of ``budget`` (``None``: the whole budget for anyone).
    shares: ClassVar[BudgetShares | None] = None
    _address: str = "?"
    #: Counts the connections the transport admitted, per address, until they are lost.
    tally: ClassVar[AddressTally | None] = None
    #: Messages up to this size are not charged to the budget.
    free_bytes: ClassVar[int] = 0
    #: Why the gate refused this connection, if it did.
    refusal: Refusal | None = None
    meter: FrameMeter | None = None
    _reading: SharedReading | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        reading = self._reading = SharedReading(cast(asyncio.Transport, transport))
        super().connection_made(reading)
        self._address = _host(transport.get_extra_info("peername"))
        if self.gate is not None:
            self.refusal = self.gate.admit(self, self._address)
        if self.budget is not None:
            budget: ByteBudget | BudgetShare = self.budget
            if self.shares is not None:
                budget = self.shares.join(self._address)
            self.meter = FrameMeter(
                budget,
                free_bytes=self.free_bytes,
                limit=lambda: max_message_size(self.protocol),
                feed=self._feed,
                pause=lambda paused: reading.hold("budget", paused),
                call_soon=asyncio.get_running_loop().call_soon,
            )

    def data_received(self, data: bytes) -> None:
        if self.meter is None:
            super().data_received(data)
        else:
            self.meter.receive(data)

    def _feed(self, data: bytes) -> None:
        super().data_received(data)

    def process_event(self, event: Event) -> None:
        if (
            isinstance(event, Frame)
            and event.opcode in DATA_OPCODES
            and len(event.data) > self.free_bytes
        ):
            # websockets' parser keeps the last frame it parsed until it has parsed the next
            # one, which may wait for the budget: the queue gets a copy and the parser's keeps
            # no payload, so a message's memory goes with its charge, when its reply is sent.
            event, parsed = dataclasses.replace(event), event
            parsed.data = b""
        elif isinstance(event, Frame) and event.opcode is Opcode.PING and self.paused:
            # websockets answers a ping by writing its pong, without waiting for the peer to
            # read: a peer that floods pings and reads nothing would grow our write buffer by
            # as much as it sends. While replies already wait unread, stop reading it.
            self._hold_reading("unread replies", True)
        super().process_event(event)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._hold_reading("unread replies", False)

    def _hold_reading(self, reason: str, paused: bool) -> None:
        if self._reading is not None:
            self._reading.hold(reason, paused)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.gate is not None:
            self.gate.release(self)
        if self.tally is not None:
            self.tally.release(self)
        if self.meter is not None:
            self.meter.close()
            if self.shares is not None:
                self.shares.leave(self._address)
        super().connection_lost(exc)


def connection_class(
    gate: PreLoginGate,
    budget: ByteBudget,
    free_bytes: int,
    tally: AddressTally | None = None,
    shares: BudgetShares | None = None,
) -> type[GatedConnection]:
    """A :class:`GatedConnection` subclass for one server (tests run several in one process)."""

    class ServerGatedConnection(GatedConnection):
        pass

    ServerGatedConnection.gate = gate
    ServerGatedConnection.tally = tally
    ServerGatedConnection.shares = shares
    ServerGatedConnection.budget = budget
    ServerGatedConnection.free_bytes = free_bytes
    return ServerGatedConnection


def max_message_size(protocol: ServerProtocol) -> int | None:
    """The largest message ``protocol`` accepts now."""
    # websockets 16 split ``max_size`` into message and fragment limits.
    size = getattr(protocol, "max_message_size", getattr(protocol, "max_size", None))
    return cast(int | None, size)


def set_max_message_size(protocol: ServerProtocol, size: int) -> None:
    """Change the largest message ``protocol`` accepts, from its next frame on.

    websockets reads the limit afresh for every frame header, so a live connection's limit may
    change; a frame whose header announces more is cut with 1009 before its payload is read.
    """
    name = "max_message_size" if hasattr(protocol, "max_message_size") else "max_size"
    setattr(protocol, name, size)


def _host(peer: object) -> str:
    """The IP address in a socket peer name, or ``"?"``."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
