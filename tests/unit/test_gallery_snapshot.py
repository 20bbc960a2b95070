"""The saved gallery: shown only to the session it was saved under, never others' private items."""

from __future__ import annotations

from pathlib import Path

from protocol.messages.accounts import UserInfo
from protocol.messages.catalogue import ItemCard
from tui.data.gallery_snapshot import MAX_CARDS, GallerySnapshots

ADA = UserInfo(id=1, username="ada")
BOB = UserInfo(id=2, username="bob")


def card(item_id: int, *, owner: UserInfo = ADA, public: bool = True) -> ItemCard:
    return ItemCard(
        id=item_id,
        title=f"Item {item_id}",
        price_cents=100,
        stock=1,
        public=public,
        owner_id=owner.id,
        owner_name=owner.username,
        tags=[],
        width=1,
        height=1,
        created_at=0.0,
        thumbnail=b"picture bytes",
        thumbnail_sha256="ab" * 32,
    )


def test_only_the_session_it_was_saved_under_gets_it_back(tmp_path: Path) -> None:
    snapshots = GallerySnapshots(tmp_path / "ns")
    snapshots.save(ADA, "ada-token", [card(1), card(2)], ["a" * 64, "b" * 64], total=2)
    saved = snapshots.load("ada-token")
    assert saved is not None
    assert saved.user == ADA and [c.id for c in saved.cards] == [1, 2]
    assert all(c.thumbnail is None for c in saved.cards)  # pictures live in the picture cache
    # Another login (another person, or ada again after a new login) does not see it.
    assert snapshots.load("bob-token") is None
    assert b"ada-token" not in (tmp_path / "ns" / "user-1.gallery").read_bytes()
    assert (tmp_path / "ns" / "user-1.gallery").stat().st_mode & 0o777 == 0o600
    snapshots.forget(ADA.id)
    assert snapshots.load("ada-token") is None


def test_other_peoples_private_items_never_enter_a_snapshot(tmp_path: Path) -> None:
    snapshots = GallerySnapshots(tmp_path)
    cards = [card(1), card(2, owner=BOB, public=False), card(3, public=False)]
    saved = snapshots.save(ADA, "t", cards, ["a" * 64] * 3, total=3)
    assert [c.id for c in saved.cards] == [1, 3]  # ada's own private item stays: it is hers


def test_snapshot_is_bounded_and_damaged_files_are_skipped(tmp_path: Path) -> None:
    snapshots = GallerySnapshots(tmp_path)
    cards = [card(i) for i in range(1, 100)]
    saved = snapshots.save(ADA, "t", cards, ["a" * 64] * len(cards), total=99)
    assert len(saved.cards) == MAX_CARDS
    (tmp_path / "user-1.gallery").write_bytes(b"\x93garbage")
    assert snapshots.load("t") is None
