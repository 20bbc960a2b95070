"""How backups check picture files: sealed ones opened as they stream past, plain ones hashed.

The restore copies files in 1 MiB reads; these tests feed the checks in pieces of every awkward
size against small segments, so each segment boundary, the header's and the file's end fall
inside, at the edge of and across pieces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backend.atrest.envelope import HEADER_BYTES, TAG_BYTES, Sealer
from backend.atrest.keyring import KEYRING, Keyring
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.sealed_blobs import blob_context
from backend.backup_pictures import (
    ContentCheck,
    HashCheck,
    PictureDamaged,
    PictureFolder,
    PictureKeyError,
    SealCheck,
    merged_keyring,
)

SEGMENT = 64
KEY = MasterKey.from_bytes(bytes(range(32)))
OTHER = MasterKey.from_bytes(bytes(range(1, 33)))
SEALER = Sealer(KeySet(KEY), segment_bytes=SEGMENT)
CONTEXT = blob_context("ab" * 32)


def feed(check: ContentCheck, data: bytes, piece: int) -> None:
    """Give ``data`` to ``check`` in pieces of ``piece`` bytes, then end it."""
    for start in range(0, len(data), piece):
        check.update(data[start : start + piece])
    check.finish()


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
@pytest.mark.parametrize("piece", [1, 7, SEGMENT + TAG_BYTES, HEADER_BYTES + 1, 1 << 20])
def test_a_sealed_file_opens_whatever_the_pieces(size: int, piece: int) -> None:
    feed(SealCheck(SEALER, CONTEXT), SEALER.seal(bytes(size), CONTEXT), piece)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


SEALED = SEALER.seal(bytes(range(200)), CONTEXT)


@pytest.mark.parametrize(
    ("damaged", "why"),
    [
        # The sizes in the header.
        pytest.param(_flip(SEALED, 20), "header fails authentication", id="header"),
        pytest.param(_flip(SEALED, HEADER_BYTES + 3), "segment 0 fails", id="first-segment"),
        pytest.param(_flip(SEALED, len(SEALED) - 1), "segment 3 fails", id="last-tag"),
        pytest.param(SEALED[:-1], "its header says", id="byte-short"),
        pytest.param(
            SEALED[: HEADER_BYTES + SEGMENT + TAG_BYTES], "its header says", id="segments-short"
        ),
        pytest.param(SEALED + b"\0", "longer than", id="byte-long"),
        pytest.param(SEALED[:HEADER_BYTES], "its header says", id="header-only"),
        pytest.param(SEALED[:40], "truncated header", id="header-short"),
        pytest.param(b"\xff\xd8\xff\xe0 a JPEG, not sealed", "not sealed", id="plain"),
    ],
)
@pytest.mark.parametrize("piece", [1, 100, 1 << 20])
def test_a_damaged_sealed_file_is_refused(damaged: bytes, why: str, piece: int) -> None:
    with pytest.raises(PictureDamaged, match=why):
        feed(SealCheck(SEALER, CONTEXT), damaged, piece)


def test_a_sealed_file_under_another_name_is_refused() -> None:
    with pytest.raises(PictureDamaged, match="header fails authentication"):
        feed(SealCheck(SEALER, blob_context("cd" * 32)), SEALED, 1 << 20)


def test_a_file_sealed_under_a_key_not_given_names_that_key() -> None:
    sealed = Sealer(KeySet(OTHER), segment_bytes=SEGMENT).seal(b"picture", CONTEXT)
    with pytest.raises(PictureKeyError, match=f"sealed under master key {OTHER.key_id}"):
        feed(SealCheck(SEALER, CONTEXT), sealed, 1 << 20)


def test_a_plain_file_is_checked_by_its_hash() -> None:
    data = b"a picture stored before encryption"
    feed(HashCheck(hashlib.sha256(data).hexdigest()), data, 5)
    with pytest.raises(PictureDamaged, match="does not match its SHA-256"):
        feed(HashCheck(hashlib.sha256(data).hexdigest()), data + b"!", 5)


# -- folders -------------------------------------------------------------------------------------


def _sealed_folder(tmp_path: Path, *, plaintext_left: bool) -> Path:
    keyring = Keyring({}, None, plaintext_left).with_key(KEY, KEY.initial_name_key())
    (tmp_path / KEYRING).write_bytes(keyring.dump())
    return tmp_path


def test_a_plain_folder_needs_no_key(tmp_path: Path) -> None:
    def no_call() -> KeySet:
        raise AssertionError("a plain folder must not load keys")

    folder = PictureFolder.open(tmp_path / "missing", no_call)
    sha = "ab" * 32
    assert not folder.encrypted and folder.stored_names(sha) == (sha,)
    assert folder.describe() == {"encrypted": False}


def test_a_sealed_folder_needs_its_key_and_says_which(tmp_path: Path) -> None:
    folder = _sealed_folder(tmp_path, plaintext_left=False)
    with pytest.raises(PictureKeyError, match=f"encrypted under master key {KEY.key_id}: give"):
        PictureFolder.open(folder, lambda: None)
    with pytest.raises(PictureKeyError, match=f"{KEY.key_id}; the key given is {OTHER.key_id}"):
        PictureFolder.open(folder, lambda: KeySet(OTHER))
    opened = PictureFolder.open(folder, lambda: KeySet(KEY))
    sha = "ab" * 32
    (sealed,) = opened.stored_names(sha)
    assert sealed != sha and len(sealed) == 64
    assert opened.describe() == {
        "encrypted": True,
        "master_keys": [KEY.key_id],
        "retiring": None,
        "plaintext_left": False,
    }
    # Sealed files only: a plain one, even one hashing to its name, is refused.
    plain = b"plain"
    with pytest.raises(PictureDamaged, match="not sealed"):
        feed(opened.check(hashlib.sha256(plain).hexdigest()), plain, 100)


def test_a_folder_being_sealed_takes_both_kinds_of_file(tmp_path: Path) -> None:
    folder = PictureFolder.open(_sealed_folder(tmp_path, plaintext_left=True), lambda: KeySet(KEY))
    plain = b"plain"
    sha = hashlib.sha256(plain).hexdigest()
    sealed_name = folder.stored_names(sha)[1]
    assert folder.stored_names(sha) == (sha, sealed_name)  # plain first: see stored_names
    for name, data in (
        (sha, plain),
        (sealed_name, Sealer(KeySet(KEY)).seal(plain, blob_context(sealed_name))),
    ):
        check = folder.check(name)
        check.update(data)
        check.finish()
    check = folder.check("cd" * 32)
    check.update(plain)
    with pytest.raises(PictureDamaged, match="does not match its SHA-256"):
        check.finish()


def test_a_copy_lists_every_key_either_keyring_read_named() -> None:
    before = Keyring({}, None, True).with_key(KEY, KEY.initial_name_key())
    rotating = before.with_key(OTHER, KEY.initial_name_key())
    after = rotating.without_key(KEY.key_id)
    merged = merged_keyring(
        Keyring(rotating.names, KEY.key_id, True), Keyring(after.names, None, False)
    )
    assert set(merged.names) == {KEY.key_id, OTHER.key_id}
    assert merged.retiring == KEY.key_id and merged.plaintext_left
