"""Master key files and the store's keyring."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend.atrest.keyring import KEYRING, KeyringMismatch, load_keyring, open_store_keys
from backend.atrest.keys import KeySet, MasterKey, MasterKeyError, generate_key_file, load_key_file
from backend.media.blobs import LocalBlobs


def test_a_new_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    key = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key_file(path).key_id == key.key_id and len(key.key_id) == 16
    with pytest.raises(MasterKeyError, match="never overwritten"):
        generate_key_file(path)
    assert load_key_file(path).key_id == key.key_id


def test_key_files_open_to_others_or_damaged_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    generate_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_key_file(path)
    os.chmod(path, 0o600)
    path.write_text('{"format": "something else"}')
    with pytest.raises(MasterKeyError, match="not a pixmart master key"):
        load_key_file(path)
    with pytest.raises(MasterKeyError, match="cannot read"):
        load_key_file(tmp_path / "missing.key")


def test_a_passphrase_key_stores_no_key_and_derives_the_same_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "master.key"
    key = generate_key_file(path, passphrase="correct horse battery staple")
    document = json.loads(path.read_text())
    assert document["kdf"] == "argon2id" and "key" not in document
    monkeypatch.setenv("PIXMART_KEY_PASSPHRASE", "correct horse battery staple")
    assert load_key_file(path).key_id == key.key_id
    monkeypatch.setenv("PIXMART_KEY_PASSPHRASE", "wrong horse battery staple")
    assert load_key_file(path).key_id != key.key_id  # a wrong passphrase is a wrong key


async def test_keyring_names_are_keyed_and_survive_a_change_of_master_key(tmp_path: Path) -> None:
    store = LocalBlobs(tmp_path / "blobs")
    old, new = MasterKey.from_bytes(os.urandom(32)), MasterKey.from_bytes(os.urandom(32))
    first = await open_store_keys(store, KeySet(old))
    sha = "ab" * 32
    name = first.storage_name(sha)
    assert name != sha and len(name) == 64
    raw = (tmp_path / "blobs" / KEYRING).read_bytes()
    assert old.key_id.encode() in raw and first.name_key not in raw
    # A server whose current key is new and which still holds the old one adds the new one.
    both = await open_store_keys(store, KeySet(new, [old]))
    assert both.storage_name(sha) == name
    keyring = await load_keyring(store)
    assert keyring is not None and set(keyring.names) == {old.key_id, new.key_id}


async def test_a_wrong_key_is_refused_naming_both_ids(tmp_path: Path) -> None:
    store = LocalBlobs(tmp_path / "blobs")
    right, wrong = MasterKey.from_bytes(os.urandom(32)), MasterKey.from_bytes(os.urandom(32))
    await open_store_keys(store, KeySet(right))
    with pytest.raises(KeyringMismatch) as caught:
        await open_store_keys(store, KeySet(wrong))
    assert right.key_id in str(caught.value) and wrong.key_id in str(caught.value)


async def test_a_store_holding_pictures_is_marked_for_sealing_in_place(tmp_path: Path) -> None:
    store = LocalBlobs(tmp_path / "blobs")
    await store.put(b"a picture from before encryption")
    keys = await open_store_keys(store, KeySet(MasterKey.from_bytes(os.urandom(32))))
    assert keys.keyring.plaintext_left
