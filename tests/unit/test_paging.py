"""A batched list asks for each batch with the previous cursor and keeps every entry once."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.paging import BatchedList, paginate


@dataclass(frozen=True)
class Row:
    id: int
    text: str = ""


def rows(*ids: int) -> list[Row]:
    return [Row(i) for i in ids]


async def test_batches_keep_each_entry_once_and_stop_at_the_end() -> None:
    pages = {None: (rows(5, 4), "a"), "a": (rows(4, 3), None)}
    asked: list[str | None] = []

    async def fetch(cursor: str | None) -> tuple[list[Row], str | None]:
        asked.append(cursor)
        return pages[cursor]

    batches: BatchedList[Row] = BatchedList(key=lambda row: row.id)
    assert [row.id for row in await batches.load_next(fetch)] == [5, 4]
    assert not batches.exhausted and batches.batches == 1
    assert [row.id for row in await batches.load_next(fetch)] == [3]  # 4 was seen already
    assert batches.exhausted and await batches.load_next(fetch) == []
    assert asked == [None, "a"]  # nothing asked once exhausted
    assert batches.prepend(Row(6)) and not batches.prepend(Row(6))
    assert [row.id for row in batches.items] == [6, 5, 4, 3]
    assert [batches.index_of(i) for i in (6, 5, 4, 3, 9)] == [0, 1, 2, 3, None]


def test_entries_are_replaced_and_removed_in_place() -> None:
    batches: BatchedList[Row] = BatchedList(key=lambda row: row.id)
    batches.add_batch(rows(1, 2, 3, 4), "c", total=10)
    assert batches.replace(Row(3, "new")) == 2 and batches.get(3) == Row(3, "new")
    assert batches.replace(Row(9)) is None and batches.get(9) is None
    assert batches.remove(2) == 1 and batches.remove(2) is None
    assert [row.id for row in batches.items] == [1, 3, 4] and batches.total == 9
    # Positions after the removed entry moved up with it.
    assert (batches.index_of(3), batches.index_of(4)) == (1, 2)
    assert batches.remove(4) == 2 and len(batches) == 2


async def test_paginate_streams_batches_up_to_a_limit() -> None:
    asked: list[tuple[int | None, str | None]] = []

    async def fetch(size: int | None, cursor: str | None) -> tuple[list[Row], str | None]:
        asked.append((size, cursor))
        start = int(cursor or 0)
        return rows(*range(start, start + (size or 2))), str(start + (size or 2))

    got = [row.id async for row in paginate(fetch, batch=2, max_items=5)]
    assert got == [0, 1, 2, 3, 4]
    assert asked == [(2, None), (2, "2"), (1, "4")]
