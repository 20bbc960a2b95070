"""Tests for the torch-free reader of the legacy PyTorch checkpoint."""

from __future__ import annotations

import collections
import io
import os
import pickle
import shutil
import struct
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.vision.weights import (
    WEIGHTS_SHA256,
    RestrictedUnpickler,
    UnsafePickleError,
    WeightsChecksumError,
    WeightsError,
    default_weights_path,
    file_sha256,
    load_state_dict,
    read_legacy_checkpoint,
)

_MAGIC = 0x1950A86A20F9469CFC6C


class _Evil:
    """Pickles as a call to ``os.system`` (never executed by the restricted unpickler)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _header() -> bytes:
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    return b"".join(pickle.dumps(value, protocol=2) for value in (_MAGIC, 1001, sys_info))


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Register stand-in ``torch`` modules so ``pickle`` can write tensor references."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"

    def _rebuild_tensor_v2(*args: object) -> None:
        raise AssertionError("never called while pickling")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return types.SimpleNamespace(storage=FloatStorage, rebuild=_rebuild_tensor_v2)


def _checkpoint(fake: types.SimpleNamespace, storage: np.ndarray, tensors: dict[str, Any]) -> bytes:
    """Write a legacy checkpoint holding one float storage and views into it."""

    class _Ref:
        def __init__(self, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
            self.args = (offset, size, stride)

        def __reduce__(self) -> tuple[Any, ...]:
            offset, size, stride = self.args
            return (
                fake.rebuild,
                (_Persistent(), offset, size, stride, False, collections.OrderedDict()),
            )

    class _Persistent:
        pass

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Persistent):
                return ("storage", fake.storage, "0", "cpu", storage.size, None)
            return None

    state = collections.OrderedDict((name, _Ref(*spec)) for name, spec in tensors.items())
    body = io.BytesIO()
    _Pickler(body, protocol=2).dump(state)
    keys = pickle.dumps(["0"], protocol=2)
    data = struct.pack("<q", storage.size) + storage.astype("<f4").tobytes()
    return _header() + body.getvalue() + keys + data


def test_packaged_weights_load_with_expected_shapes() -> None:
    state = load_state_dict()
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in state.values())
    assert sum(v.size for v in state.values()) == 4_694_073


def test_packaged_file_hash_matches_constant() -> None:
    assert file_sha256(default_weights_path()) == WEIGHTS_SHA256


def test_altered_file_is_a_typed_checksum_error(tmp_path: Path) -> None:
    copy = tmp_path / "weights.pth"
    shutil.copyfile(default_weights_path(), copy)
    with copy.open("r+b") as stream:
        stream.seek(1_000_000)
        byte = stream.read(1)
        stream.seek(1_000_000)
        stream.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsChecksumError) as caught:
        load_state_dict(copy)
    assert caught.value.expected == WEIGHTS_SHA256
    assert caught.value.actual != WEIGHTS_SHA256
    assert isinstance(caught.value, WeightsError)


def test_wrong_expected_hash_is_rejected() -> None:
    with pytest.raises(WeightsChecksumError):
        load_state_dict(expected_sha256="0" * 64)


def test_malicious_state_dict_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _header() + pickle.dumps(_Evil(marker), protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        read_legacy_checkpoint(io.BytesIO(payload))
    assert not marker.exists()


def test_malicious_header_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError):
        read_legacy_checkpoint(io.BytesIO(pickle.dumps(_Evil(marker), protocol=2)))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("os", "system"), ("torch", "load"), ("collections", "deque")],
)
def test_unpickler_allows_only_tensor_globals(module: str, name: str) -> None:
    with pytest.raises(UnsafePickleError):
        RestrictedUnpickler(io.BytesIO(b"")).find_class(module, name)


def test_strided_views_honour_offset_and_stride(fake_torch: types.SimpleNamespace) -> None:
    storage = np.arange(20, dtype=np.float32)
    raw = _checkpoint(
        fake_torch,
        storage,
        {
            "plain": (0, (2, 3), (3, 1)),
            "transposed": (0, (3, 2), (1, 3)),  # a .t() view: column-major
            "offset": (5, (4,), (2,)),
            "scalar": (19, (), ()),
        },
    )
    state = read_legacy_checkpoint(io.BytesIO(raw))
    np.testing.assert_array_equal(state["plain"], storage[:6].reshape(2, 3))
    np.testing.assert_array_equal(state["transposed"], storage[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(state["offset"], [5, 7, 9, 11])
    assert state["scalar"].shape == () and state["scalar"] == 19
    assert state["transposed"].flags.c_contiguous and state["transposed"].flags.owndata


def test_view_outside_its_storage_is_rejected(fake_torch: types.SimpleNamespace) -> None:
    raw = _checkpoint(fake_torch, np.zeros(4, np.float32), {"bad": (2, (3,), (1,))})
    with pytest.raises(WeightsError, match="outside"):
        read_legacy_checkpoint(io.BytesIO(raw))


def test_truncated_checkpoint_is_a_weights_error(fake_torch: types.SimpleNamespace) -> None:
    raw = _checkpoint(fake_torch, np.zeros(8, np.float32), {"w": (0, (8,), (1,))})
    with pytest.raises(WeightsError, match="truncated"):
        read_legacy_checkpoint(io.BytesIO(raw[:-5]))


def test_not_a_checkpoint_is_a_weights_error() -> None:
    with pytest.raises(WeightsError):
        read_legacy_checkpoint(io.BytesIO(pickle.dumps(42, protocol=2)))
