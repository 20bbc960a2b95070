"""Provides :class:`SlotTable`: which item each faiss row ("slot") holds, and who may see it.

faiss numbers rows in the order they are added and cannot take one out of a graph, so the
approximate structure (:mod:`backend.vision.graph`) never removes a row: a deleted or
re-embedded item leaves a dead slot behind, and :attr:`SlotTable.dead_fraction` tells the
owner when to build afresh.

Visibility is applied inside the search: :meth:`SlotTable.bitmap` packs the slots a viewer may
see (public and alive, plus the viewer's own private items, intersected with an optional id
prefilter) into the bitmap faiss's ``IDSelectorBitmap`` reads, so the search skips other
viewers' private rows instead of returning neighbours that are filtered away afterwards. The
public part of that bitmap is kept packed and up to date, so building it costs a copy of
``slots / 8`` bytes per search.

Not thread-safe: the structure owning the table serialises every call with its own lock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from backend.vision.exact_index import StoredRows


class SlotTable:
    """Slot -> item, owner, alive flag and packed public bits; item -> its live slot."""

    def __init__(self) -> None:
        """Create an empty table."""
        self._slots = 0
        self._item = np.empty(0, np.int64)
        self._owner = np.empty(0, np.int64)
        self._alive = np.empty(0, np.bool_)
        #: Bit ``s`` (little-endian bit order, as faiss reads it) set: slot ``s`` is alive and
        #: public.
        self._public_bits = np.empty(0, np.uint8)
        self._slot_of: dict[int, int] = {}
        #: The alive private slots of each owner: OR-ed into the bitmap of that owner's searches.
        self._private_of: dict[int, set[int]] = {}

    def __len__(self) -> int:
        """How many items the table holds (alive slots)."""
        return len(self._slot_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slot_of

    @property
    def slots(self) -> int:
        """Slots handed out so far, dead ones included (the next row added gets this number)."""
        return self._slots

    @property
    def dead_fraction(self) -> float:
        """The share of slots whose item was deleted or re-added since (0 when empty)."""
        return 1.0 - len(self._slot_of) / self._slots if self._slots else 0.0

    @property
    def nbytes(self) -> int:
        """Approximate bytes held per slot (item, owner, alive flag, public bit, lookup)."""
        return self._slots * (8 + 8 + 1 + 8) + self._public_bits.nbytes

    def items(self, slots: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the item ids of ``slots`` (faiss's answer; ``-1``, no answer, is dropped)."""
        found: NDArray[np.int64] = self._item[slots[slots >= 0]]
        return found

    def append(self, rows: StoredRows) -> None:
        """Give ``rows`` the next slots, in order; an item already present loses its old slot.

        The caller adds the same rows to faiss in the same order.
        """
        for item_id in rows.item_ids.tolist():
            self.kill(item_id)
        first = self._slots
        self._reserve(first + len(rows.item_ids))
        self._slots = first + len(rows.item_ids)
        stop = self._slots
        self._item[first:stop] = rows.item_ids
        self._owner[first:stop] = rows.owner_ids
        self._alive[first:stop] = True
        for offset, (item_id, owner_id, public) in enumerate(
            zip(rows.item_ids.tolist(), rows.owner_ids.tolist(), rows.public.tolist(),
                strict=True)
        ):
            slot = first + offset
            self._slot_of[item_id] = slot
            self._set_visibility(slot, owner_id, public)

    def set_visibility(self, item_id: int, *, owner_id: int, public: bool) -> None:
        """Record an item's owner and public flag; ``KeyError`` if the table lacks it."""
        slot = self._slot_of[item_id]
        self._forget_private(slot)
        self._owner[slot] = owner_id
        self._set_visibility(slot, owner_id, public)

    def kill(self, item_id: int) -> bool:
        """Take an item out of every search (its slot dies); return whether it was there."""
        slot = self._slot_of.pop(item_id, None)
        if slot is None:
            return False
        self._alive[slot] = False
        self._forget_private(slot)
        self._public_bits[slot >> 3] &= np.uint8(0xFF ^ (1 << (slot & 7)))
        return True

    def bitmap(
        self, viewer_id: int | None, allowed_ids: NDArray[np.int64] | None
    ) -> NDArray[np.uint8]:
        """The packed bitmap of the slots a search may return (see the module's docstring)."""
        size = -(-self._slots // 8)
        bitmap = self._public_bits[:size].copy()
        private = self._private_of.get(viewer_id) if viewer_id is not None else None
        if private:
            slots = np.fromiter(private, np.int64, len(private))
            np.bitwise_or.at(bitmap, slots >> 3, (1 << (slots & 7)).astype(np.uint8))
        if allowed_ids is not None:
            chosen = self._alive[: self._slots] & np.isin(self._item[: self._slots], allowed_ids)
            bitmap &= np.packbits(chosen, bitorder="little")
        return bitmap

    def _set_visibility(self, slot: int, owner_id: int, public: bool) -> None:
        mask = np.uint8(1 << (slot & 7))
        if public:
            self._public_bits[slot >> 3] |= mask
        else:
            self._public_bits[slot >> 3] &= ~mask
            self._private_of.setdefault(owner_id, set()).add(slot)

    def _forget_private(self, slot: int) -> None:
        owner = int(self._owner[slot])
        private = self._private_of.get(owner)
        if private is not None:
            private.discard(slot)
            if not private:
                del self._private_of[owner]

    def _reserve(self, slots: int) -> None:
        if len(self._item) >= slots:
            return
        capacity = max(slots, 2 * len(self._item), 1024)
        self._item = _grown(self._item, capacity)
        self._owner = _grown(self._owner, capacity)
        self._alive = _grown(self._alive, capacity)
        self._public_bits = _grown(self._public_bits, -(-capacity // 8))


def _grown(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    grown = np.zeros(capacity, array.dtype)
    grown[: len(array)] = array
    return grown
