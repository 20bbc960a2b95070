"""Provides the sealed format of a stored picture: a header, then AES-256-GCM segments.

Layout (all integers big-endian)::

    header  magic "PXSEAL01" (8) | master key id (8) | segment size u32 | plaintext size u64
            | wrapped data key (60: nonce, key, tag)                          = 88 bytes
    segment i, for i in 0..n-1: ciphertext of plaintext[i*S:(i+1)*S] | GCM tag (16)

Each sealed object has its own random data key. Segment ``i`` is encrypted with the nonce ``i``
(unique: the key is never used for another object) and authenticated with the object's
*context* (what it is and where it lives: the caller's bytes, e.g. its stored name), its index
and whether it is the last one. Hence a flipped bit, a segment moved or copied from elsewhere, a
file truncated at a segment boundary or swapped with another object's all fail to open, and a
ranged read decrypts only the segments it touches. The header's sizes and the context are
authenticated by the wrapping of the data key, so they cannot be altered either.

Rotating the master key rewrites only the header (:meth:`Sealer.rewrap_header`): the segments,
and so the pictures, are not re-encrypted.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.atrest.keys import KEY_BYTES, WRAPPED_BYTES, KeySet, MasterKey, WrongKey
from backend.media.reply_buffers import unfilled_bytearray

MAGIC: Final = b"PXSEAL01"
_FIXED: Final = struct.Struct(">8s8sIQ")
HEADER_BYTES: Final = _FIXED.size + WRAPPED_BYTES
TAG_BYTES: Final = 16
#: Plaintext bytes per segment: large enough that the tags cost 0.02%, small enough that a
#: ranged read of a few bytes decrypts little.
SEGMENT_BYTES: Final = 64 * 1024
_MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
#: Opened headers a :class:`Sealer` keeps (about 1 KB each): listings open the same thumbnails
#: again and again, and unwrapping a data key costs more than decrypting a thumbnail.
OPENED_HEADERS: Final = 4096


class SealBroken(Exception):
    """Sealed bytes do not open: altered, truncated, misplaced, or not sealed at all.

    The message names what failed and where, never any key material.
    """


class NotSealed(SealBroken):
    """The bytes do not start with a sealed header (e.g. a picture stored before encryption)."""


@dataclass(frozen=True, slots=True)
class Header:
    """A sealed object's header, parsed but not yet opened."""

    key_id: str
    segment_bytes: int
    plaintext_bytes: int
    wrapped_key: bytes

    @property
    def segments(self) -> int:
        """How many segments follow (at least one: an empty object has one empty segment)."""
        return max(1, -(-self.plaintext_bytes // self.segment_bytes))

    @property
    def sealed_bytes(self) -> int:
        """The sealed object's whole size."""
        return HEADER_BYTES + self.plaintext_bytes + self.segments * TAG_BYTES

    def segment_offset(self, index: int) -> int:
        """Where segment ``index`` starts in the sealed object."""
        return HEADER_BYTES + index * (self.segment_bytes + TAG_BYTES)

    def fixed_part(self) -> bytes:
        """The header without the wrapped key."""
        return _FIXED.pack(
            MAGIC, bytes.fromhex(self.key_id), self.segment_bytes, self.plaintext_bytes
        )

    def wrap_context(self, context: bytes) -> bytes:
        """What the wrapping of the data key authenticates besides the key itself."""
        fixed = self.fixed_part()
        return fixed[:8] + fixed[16:] + hashlib.sha256(context).digest()

    def pack(self) -> bytes:
        """The header's bytes."""
        return self.fixed_part() + self.wrapped_key


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` starts like sealed bytes."""
    return data[: len(MAGIC)] == MAGIC


def parse_header(data: bytes) -> Header:
    """The header at the start of ``data`` (at least :data:`HEADER_BYTES`).

    Raises:
        NotSealed: ``data`` does not start with a sealed header.
        SealBroken: the header is short or its sizes impossible.
    """
    if not is_sealed(data):
        raise NotSealed("not sealed: no pixmart seal header")
    if len(data) < HEADER_BYTES:
        raise SealBroken(f"truncated header: {len(data)} of {HEADER_BYTES} bytes")
    _, key_id, segment_bytes, plaintext_bytes = _FIXED.unpack_from(data)
    if not 0 < segment_bytes <= _MAX_SEGMENT_BYTES:
        raise SealBroken(f"impossible segment size {segment_bytes}")
    return Header(
        key_id=key_id.hex(),
        segment_bytes=segment_bytes,
        plaintext_bytes=plaintext_bytes,
        wrapped_key=bytes(data[_FIXED.size : HEADER_BYTES]),
    )


def plaintext_size(sealed_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> int:
    """The plaintext size of an object sealed whole (:meth:`Sealer.seal`) into ``sealed_bytes``.

    Raises:
        SealBroken: no sealed object has that size.
    """
    body = sealed_bytes - HEADER_BYTES
    segments = max(1, -(-body // (segment_bytes + TAG_BYTES)))
    plain = body - segments * TAG_BYTES
    if plain < 0 or max(1, -(-plain // segment_bytes)) != segments:
        raise SealBroken(f"no sealed object is {sealed_bytes} bytes long")
    return plain


def _segment_aad(context_digest: bytes, index: int, last: bool) -> bytes:
    return context_digest + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


class OpenedHeader:
    """A header whose data key was unwrapped: it opens the object's segments.

    Args:
        header: The parsed header.
        data_key: Its unwrapped data key.
        context: The context the object was sealed with.
    """

    def __init__(self, header: Header, data_key: bytes, context: bytes) -> None:
        self.header = header
        self.cipher = AESGCM(data_key)
        self._digest = hashlib.sha256(context).digest()
        # Read for every segment opened: computed once, not by the header's properties.
        self._segments = header.segments
        self._last_bytes = header.plaintext_bytes - (self._segments - 1) * header.segment_bytes

    def segment_span(self, offset: int, length: int) -> tuple[int, int]:
        """The first and last segment (inclusive) holding plaintext ``[offset, offset+length)``.

        ``length`` must be positive and ``offset`` before the end.
        """
        size = self.header.segment_bytes
        end = min(offset + length, self.header.plaintext_bytes)
        return offset // size, max(offset, end - 1) // size

    def open_segments(self, first: int, sealed: bytes | memoryview) -> bytes:
        """Decrypt consecutive segments from ``first``, given as one run of sealed bytes.

        Raises:
            SealBroken: a segment fails authentication or is short.
        """
        size = self.header.segment_bytes + TAG_BYTES
        view = memoryview(sealed)
        if len(view) <= size:  # one segment (every thumbnail): no list, no join
            return self._open_segment(first, view)
        return b"".join(
            self._open_segment(first + position // size, view[position : position + size])
            for position in range(0, len(view), size)
        )

    def _open_segment(self, index: int, piece: memoryview) -> bytes:
        expected = self._sealed_length(index)
        if len(piece) != expected:
            raise SealBroken(f"segment {index} is {len(piece)} bytes, expected {expected}")
        last = index == self._segments - 1
        try:
            return self.cipher.decrypt(
                _nonce(index), piece, _segment_aad(self._digest, index, last)
            )
        except InvalidTag:
            raise SealBroken(f"segment {index} fails authentication") from None

    def _sealed_length(self, index: int) -> int:
        if index >= self._segments:
            return -1
        if index == self._segments - 1:
            return self._last_bytes + TAG_BYTES
        return self.header.segment_bytes + TAG_BYTES

    def sealed_span(self, offset: int, length: int) -> tuple[int, int, int] | None:
        """Which sealed bytes hold plaintext ``[offset, offset+length)``.

        Returns:
            ``(first segment, start, stop)``: read the sealed object's ``[start, stop)`` and
            hand it to :meth:`plaintext_range`; ``None`` when the range holds no bytes.
        """
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        if length <= 0 or offset >= self.header.plaintext_bytes:
            return None
        first, last = self.segment_span(offset, length)
        start = self.header.segment_offset(first)
        return first, start, self.header.segment_offset(last) + self._sealed_length(last)

    def plaintext_range(
        self, first: int, sealed: bytes | memoryview, offset: int, length: int
    ) -> bytes | bytearray:
        """Plaintext ``[offset, offset+length)`` from the segments :meth:`sealed_span` named,
        given whole (:meth:`segment_run` takes them as they are read).

        Raises:
            SealBroken: a segment fails authentication or is short.
        """
        run = self.segment_run(first, len(sealed))
        run.feed(memoryview(sealed))
        return run.plaintext(offset, length)

    def segment_run(
        self, first: int, sealed_bytes: int, into: bytearray | None = None
    ) -> SegmentRun:
        """An opener of the ``sealed_bytes`` of consecutive segments from ``first`` (as
        :meth:`sealed_span` names them), fed as they are read (see :class:`SegmentRun`).

        Raises:
            SealBroken: no run of segments from ``first`` is ``sealed_bytes`` long.
        """
        return SegmentRun(self, first, sealed_bytes, into)


class SegmentRun:
    """Consecutive segments of one object opened into one buffer as their sealed bytes come.

    The sealed bytes are fed in order, whole segments at a time (a read through a small buffer
    opens each piece while it is still in the CPU's cache); each segment is decrypted in place
    in the buffer (no piece per segment, no join). Every segment's length is checked before any
    is decrypted, so the segments fill the buffer whole (it is not zeroed first) or
    :meth:`plaintext` refuses it: it is never handed out partly written.

    Args:
        opened: The object's opened header.
        first: The first segment's index.
        sealed_bytes: The sealed bytes of the run: whole segments, the object's last one may be
            shorter.
        into: The buffer to open them into, if the caller keeps one of :attr:`plain_bytes`
            (it is written whole before :meth:`plaintext` returns it); else a new one.

    Raises:
        SealBroken: no run of segments from ``first`` is ``sealed_bytes`` long.
    """

    def __init__(
        self, opened: OpenedHeader, first: int, sealed_bytes: int, into: bytearray | None = None
    ) -> None:
        self._opened = opened
        self._stride = stride = opened.header.segment_bytes + TAG_BYTES
        self._first = first
        self._sealed_bytes = sealed_bytes
        pieces = max(1, -(-sealed_bytes // stride))
        # Every piece but the last is a whole stride by construction, and a whole segment's
        # length is right unless it is the object's last or past it; so only the last piece
        # (and that the run ends within the object) needs checking.
        last = first + pieces - 1
        got = sealed_bytes - (pieces - 1) * stride
        if last >= opened._segments or got != opened._sealed_length(last):
            raise SealBroken(
                f"no run of segments from {first} is {sealed_bytes} bytes long "
                f"(the object has {opened._segments})"
            )
        #: The plaintext bytes of the run.
        self.plain_bytes = sealed_bytes - pieces * TAG_BYTES
        if into is not None and len(into) != self.plain_bytes:
            raise ValueError(f"a buffer of {len(into)} bytes for {self.plain_bytes}")
        # Else made by the first feed, in the thread that reads: a buffer of a few MiB made on
        # the event loop's thread comes from the main heap, which gives such memory back to
        # the kernel and faults it in again for the next (a third more page faults).
        self._plain = bytearray() if into is None else into
        self._out = memoryview(self._plain)
        self._fed = 0

    def feed(self, sealed: memoryview) -> None:
        """Open the next whole segments, given as one run of their sealed bytes.

        Raises:
            SealBroken: a segment fails authentication, or is short or more than the run.
        """
        opened, stride, fed = self._opened, self._stride, self._fed
        if not fed and len(self._plain) < self.plain_bytes:
            self._out.release()
            self._plain = unfilled_bytearray(self.plain_bytes)
            self._out = memoryview(self._plain)
        # The run's pieces were checked when it was made (whole strides, then the last), and
        # every feed but the last ends on a stride: so the pieces are the right length when
        # this feed stays within the run and is whole strides or ends the run.
        end = fed + len(sealed)
        if end > self._sealed_bytes or (len(sealed) % stride and end != self._sealed_bytes):
            index = self._first + fed // stride
            raise SealBroken(
                f"segments from {index}: {len(sealed)} bytes do not fit the "
                f"{self._sealed_bytes - fed} left in the run"
            )
        # Per segment only the nonce, the authenticated data and the call: a 4 MiB slice is
        # 64 segments, and Python work per segment showed in a download's CPU.
        decrypt, digest, last = opened.cipher.decrypt_into, opened._digest, opened._segments - 1
        index = self._first + fed // stride
        at = (fed // stride) * (stride - TAG_BYTES)
        out = self._out
        for position in range(0, len(sealed), stride):
            piece = sealed[position : position + stride]
            plain = len(piece) - TAG_BYTES
            try:
                decrypt(
                    _nonce(index),
                    piece,
                    _segment_aad(digest, index, index == last),
                    out[at : at + plain],
                )
            except InvalidTag:
                # The buffer holds unauthenticated bytes now: it is dropped, never returned.
                raise SealBroken(f"segment {index} fails authentication") from None
            index += 1
            at += plain
        self._fed = end

    def plaintext(self, offset: int, length: int) -> bytes | bytearray:
        """Plaintext ``[offset, offset+length)`` of the run, once every segment was fed.

        A range starting and ending on the segments' bounds (a download's slices) is the buffer
        the segments were opened into, not a copy of it.

        Raises:
            SealBroken: the sealed bytes ended early (the object is truncated).
        """
        if self._fed != self._sealed_bytes:
            raise SealBroken(f"the segments end after {self._fed} of {self._sealed_bytes} bytes")
        self._out.release()
        skip = offset - self._first * self._opened.header.segment_bytes
        if skip == 0 and length >= len(self._plain):
            return self._plain
        return self._plain[skip : skip + length]


class Sealer:
    """Seals and opens objects under the master keys of a :class:`KeySet`.

    Args:
        keys: The keys held; new objects are wrapped under ``keys.current``.
        segment_bytes: Plaintext bytes per segment.
    """

    def __init__(self, keys: KeySet, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.keys = keys
        self.segment_bytes = segment_bytes
        # Keyed by the whole header and the context, everything the unwrapping authenticates:
        # a hit is what opening them again would give. Failures raise, so are never kept.
        self._opened = functools.lru_cache(maxsize=OPENED_HEADERS)(self._open_header)

    # -- sealing ---------------------------------------------------------------------------

    def new_header(self, plaintext_bytes: int, context: bytes) -> tuple[bytes, OpenedHeader]:
        """A header for ``plaintext_bytes`` under a new data key, and that key ready to use."""
        master = self.keys.current
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        header = Header(master.key_id, self.segment_bytes, plaintext_bytes, b"")
        wrapped = master.wrap(data_key, header.wrap_context(context))
        header = Header(master.key_id, self.segment_bytes, plaintext_bytes, wrapped)
        return header.pack(), OpenedHeader(header, data_key, context)

    def seal(self, data: bytes, context: bytes) -> bytes:
        """``data`` sealed, bound to ``context``."""
        return b"".join(self.seal_stream(memoryview(data), len(data), context))

    def seal_file(self, source: BinaryIO, size: int, context: bytes) -> Iterator[bytes]:
        """The sealed form of the ``size`` bytes ``source`` reads, a segment at a time.

        Raises:
            SealBroken: ``source`` ended before ``size`` bytes (it changed while being sealed).
        """

        def pieces() -> Iterator[bytes]:
            remaining = size
            while remaining > 0:
                piece = source.read(min(self.segment_bytes, remaining))
                if not piece:
                    raise SealBroken(f"the file ended {remaining} bytes early while sealing")
                remaining -= len(piece)
                yield piece

        return self._seal_pieces(pieces(), size, context)

    def seal_stream(self, data: memoryview, size: int, context: bytes) -> Iterator[bytes]:
        """The sealed form of ``data``, header first, a segment at a time."""
        pieces = (
            data[start : start + self.segment_bytes] for start in range(0, size, self.segment_bytes)
        )
        return self._seal_pieces(pieces, size, context)

    def _seal_pieces(
        self, pieces: Iterator[bytes | memoryview], size: int, context: bytes
    ) -> Iterator[bytes]:
        header_bytes, opened = self.new_header(size, context)
        yield header_bytes
        last = opened.header.segments - 1
        digest = hashlib.sha256(context).digest()
        cipher = opened.cipher
        index = 0
        for piece in pieces:
            yield cipher.encrypt(_nonce(index), piece, _segment_aad(digest, index, index == last))
            index += 1
        if index == 0:
            yield cipher.encrypt(_nonce(0), b"", _segment_aad(digest, 0, True))

    # -- opening ---------------------------------------------------------------------------

    def open_header(self, data: bytes, context: bytes) -> OpenedHeader:
        """Parse the header at the start of ``data`` and unwrap its data key.

        Raises:
            NotSealed: ``data`` is not sealed.
            WrongKey: a master key this sealer does not hold wrapped it.
            SealBroken: the header was altered, or belongs to another context.
        """
        return self._opened(bytes(data[:HEADER_BYTES]), context)

    def _open_header(self, data: bytes, context: bytes) -> OpenedHeader:
        header = parse_header(data)
        try:
            data_key = self.keys.unwrap(
                header.key_id, header.wrapped_key, header.wrap_context(context)
            )
        except InvalidTag:
            raise SealBroken("the header fails authentication (altered or misplaced)") from None
        return OpenedHeader(header, data_key, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """The plaintext of ``sealed``, checked whole.

        Raises:
            NotSealed, WrongKey, SealBroken: as :meth:`open_header`; SealBroken also when a
                segment fails or the object is longer or shorter than its header says.
        """
        opened = self.open_header(sealed, context)
        if len(sealed) != opened.header.sealed_bytes:
            raise SealBroken(f"{len(sealed)} bytes, the header says {opened.header.sealed_bytes}")
        return opened.open_segments(0, memoryview(sealed)[HEADER_BYTES:])

    def rewrap_header(self, data: bytes, context: bytes) -> bytes | None:
        """The header of ``data`` with its data key wrapped under the current master key.

        Returns ``None`` when it is wrapped under the current key already.

        Raises:
            NotSealed, WrongKey, SealBroken: as :meth:`open_header`.
        """
        header = parse_header(data)
        current = self.keys.current
        if header.key_id == current.key_id:
            return None
        data_key = self.keys.unwrap(header.key_id, header.wrapped_key, header.wrap_context(context))
        moved = Header(current.key_id, header.segment_bytes, header.plaintext_bytes, b"")
        wrapped = current.wrap(data_key, moved.wrap_context(context))
        return Header(current.key_id, header.segment_bytes, header.plaintext_bytes, wrapped).pack()


__all__ = [
    "plaintext_size",
    "HEADER_BYTES",
    "Header",
    "MasterKey",
    "NotSealed",
    "OpenedHeader",
    "SealBroken",
    "Sealer",
    "SegmentRun",
    "WrongKey",
    "is_sealed",
    "parse_header",
]
