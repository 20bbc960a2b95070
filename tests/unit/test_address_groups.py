"""Tests of :class:`backend.address_groups.AddressGroups`: the two orders the edge bounds read."""

from __future__ import annotations

from backend.address_groups import AddressGroups


def test_counts_per_key_and_in_all_and_forgets_emptied_keys() -> None:
    groups: AddressGroups[str, float] = AddressGroups()
    groups.add("a1", "10.0.0.1", 1.0)
    groups.add("b1", "10.0.0.2", 2.0)
    groups.add("a2", "10.0.0.1", 3.0)
    assert len(groups) == 3 and groups.count("10.0.0.1") == 2 and groups.count("10.0.0.9") == 0
    assert "a1" in groups and groups.get("a2") == 3.0 and groups.get("zz") is None
    assert groups.oldest() == 1.0 and groups.oldest_of("10.0.0.1") == 1.0
    assert groups.pop("a1") == 1.0 and groups.pop("a1") is None
    assert groups.oldest() == 2.0 and groups.oldest_of("10.0.0.1") == 3.0
    assert groups.pop("a2") == 3.0
    assert groups.count("10.0.0.1") == 0 and groups.oldest_of("10.0.0.1") is None
    assert len(groups) == 1


def test_the_busiest_address_gives_its_oldest_entry_only_when_it_has_more() -> None:
    groups: AddressGroups[str, int] = AddressGroups()
    assert groups.busiest_oldest(0) is None
    for n in range(3):
        groups.add(f"x{n}", "attacker", n)
    groups.add("y0", "person", 9)
    assert groups.busiest_oldest(1) == ("x0", 0)
    assert groups.busiest_oldest(3) is None  # a newcomer that would hold as many takes nothing
