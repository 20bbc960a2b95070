"""Provides the image embedder: EfficientNet-Lite0 run through TFLite (or Keras) on batches.

The first :class:`Embedder` built for a cache directory parses the shipped PyTorch weights,
builds the Keras model, exports it as a SavedModel, converts that to a float32 TFLite flatbuffer,
checks that TFLite and Keras agree on a probe batch, and stores ``model.tflite`` plus a manifest
in the cache directory. Later embedders load the flatbuffer directly (no weights parsing, no
Keras), which takes well under a second.

TFLite is the default runtime because XNNPACK runs this network 1.6-1.8x as fast as Keras'
``predict_on_batch`` on the 2-core target machine (see ``tests/bench/bench_vision.py``). Both
runtimes are float32 and agree to within 1e-6 per embedding component, so embeddings made by
either carry the same :data:`MODEL_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from backend.vision.preprocess import preprocess as preprocess
from backend.vision.tfenv import quiet_native_stderr, tensorflow
from backend.vision.types import (
    EMBEDDING_DIM,
    IMAGE_SIZE,
    NUM_CLASSES,
    EmbedBatch,
    check_batch,
)
from backend.vision.weights import WEIGHTS_SHA256, load_state_dict
from backend.vision.worker import EmbeddingWorker as EmbeddingWorker

#: Bump when preprocessing or the network graph changes in a way that changes embeddings.
PIPELINE_REVISION: Final = 1
#: Recorded with every stored embedding; embeddings of different versions are not comparable.
MODEL_VERSION: Final = f"efficientnet-lite0@{WEIGHTS_SHA256[:8]}/v{PIPELINE_REVISION}"

Runtime = Literal["tflite", "keras"]

_TFLITE_FILE: Final = "model.tflite"
_MANIFEST_FILE: Final = "manifest.json"
# Bounds the activation memory of one interpreter call (several MB per picture at 224x224).
_MAX_CHUNK: Final = 64
# Largest embedding difference tolerated between Keras and the TFLite conversion at build time.
_CONVERSION_TOLERANCE: Final = 1e-3


class EmbedderError(RuntimeError):
    """Raised when the model cannot be built, converted or loaded."""


def default_cache_dir(data_dir: Path) -> Path:
    """Return the model cache folder for ``data_dir``, keyed by the weights' hash."""
    return data_dir / "models" / WEIGHTS_SHA256[:16]


class _Network(Protocol):
    """A float32 [N, 224, 224, 3] -> (features [N, 1280], logits [N, 1000]) function."""

    def run(self, pixels: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Run the network on one chunk."""
        ...


class _KerasNetwork:
    """The network as a Keras model (reference runtime; also used to check conversions)."""

    def __init__(self, model: Any) -> None:  # noqa: ANN401 - keras.Model, imported lazily
        self._model = model

    def run(self, pixels: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        features, logits = self._model.predict_on_batch(pixels)
        return np.asarray(features, np.float32), np.asarray(logits, np.float32)


class _TfliteNetwork:
    """The network as a TFLite interpreter (XNNPACK); not thread-safe, callers serialise."""

    def __init__(self, flatbuffer: bytes, num_threads: int) -> None:
        tf = tensorflow()
        with quiet_native_stderr(), warnings.catch_warnings():
            # tf.lite.Interpreter warns that it moves to the ai_edge_litert package; it still
            # ships with TensorFlow 2.21 and behaves the same.
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=num_threads)
            self._runner = interpreter.get_signature_runner("serving_default")
            probe = self._runner(pixels=np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
        # Keras' export names outputs output_0/output_1; match them by shape instead of order.
        self._features_key = _output_key(probe, EMBEDDING_DIM)
        self._logits_key = _output_key(probe, NUM_CLASSES)
        self._interpreter = interpreter  # the runner needs it alive

    def run(self, pixels: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        # The runner resizes the input tensor when the batch size changes (cheap, ~1 ms).
        outputs = self._runner(pixels=pixels)
        return (
            np.array(outputs[self._features_key], np.float32),
            np.array(outputs[self._logits_key], np.float32),
        )


def _output_key(outputs: dict[str, NDArray[Any]], width: int) -> str:
    """Return the name of the single output whose last dimension is ``width``."""
    keys = [key for key, value in outputs.items() if value.shape[-1:] == (width,)]
    if len(keys) != 1:
        raise EmbedderError(f"TFLite model has no unique output of width {width}: {list(outputs)}")
    return keys[0]


class Embedder:
    """Turns batches of preprocessed pictures into embeddings and class probabilities.

    Building is slow the first time for a cache directory (about 10-15 s: weights, Keras,
    conversion) and fast afterwards. Calls to :meth:`embed` are serialised by a lock; for use from
    asyncio wrap the embedder in an :class:`EmbeddingWorker`.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        runtime: Runtime = "tflite",
        num_threads: int = 2,
        weights_path: Path | None = None,
    ) -> None:
        """Load the model from ``cache_dir``, building and caching it first if needed.

        Args:
            cache_dir: Folder for the converted model, normally :func:`default_cache_dir`
                (the Keras runtime builds from the weights every time and ignores it).
            runtime: ``"tflite"`` (fast, default) or ``"keras"`` (reference).
            num_threads: Threads the TFLite interpreter may use.
            weights_path: The checkpoint; defaults to the packaged one. It must have the
                expected SHA-256 either way.

        Raises:
            WeightsError: The checkpoint is missing, altered or malformed.
            EmbedderError: Conversion failed or produced a model that disagrees with Keras.
        """
        self._cache_dir = cache_dir
        self._runtime: Runtime = runtime
        self._lock = threading.Lock()
        self._network: _Network
        if runtime == "keras":
            self._network = _KerasNetwork(_build_keras(weights_path))
        elif runtime == "tflite":
            flatbuffer = _cached_flatbuffer(cache_dir)
            if flatbuffer is None:
                flatbuffer = _convert_and_cache(cache_dir, weights_path)
            self._network = _TfliteNetwork(flatbuffer, num_threads)
        else:
            raise ValueError(f"unknown runtime {runtime!r}")

    @property
    def model_version(self) -> str:
        """The version string to store next to every embedding this embedder makes."""
        return MODEL_VERSION

    @property
    def runtime(self) -> Runtime:
        """Which runtime executes the network."""
        return self._runtime

    def embed(self, batch: NDArray[np.uint8]) -> EmbedBatch:
        """Embed a batch of preprocessed pictures (see :func:`preprocess`).

        Args:
            batch: uint8 ``[N, 224, 224, 3]`` RGB pictures.

        Returns:
            L2-normalised float32 ``[N, 1280]`` embeddings and float32 ``[N, 1000]`` softmax
            probabilities over the ImageNet classes.

        Raises:
            ValueError: ``batch`` has the wrong dtype or shape.
        """
        batch = check_batch(batch)
        features = np.empty((len(batch), EMBEDDING_DIM), np.float32)
        logits = np.empty((len(batch), NUM_CLASSES), np.float32)
        with self._lock:
            for start in range(0, len(batch), _MAX_CHUNK):
                chunk = batch[start : start + _MAX_CHUNK].astype(np.float32)
                stop = start + len(chunk)
                features[start:stop], logits[start:stop] = self._network.run(chunk)
        return EmbedBatch(normalise_rows(features), softmax(logits))


def normalise_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return ``matrix`` with every row scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: NDArray[np.float32] = (matrix / np.maximum(norms, np.float32(1e-12))).astype(
        np.float32, copy=False
    )
    return result


def softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return the row-wise softmax of ``logits``, computed stably."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: NDArray[np.float32] = (shifted / shifted.sum(axis=1, keepdims=True)).astype(
        np.float32, copy=False
    )
    return result


def _build_keras(weights_path: Path | None) -> Any:  # noqa: ANN401 - keras.Model
    """Parse the checkpoint (checking its hash) and build the Keras model."""
    from backend.vision.model import build_keras_model

    state = load_state_dict(weights_path)
    tensorflow()  # quiet import before Keras pulls TensorFlow in
    return build_keras_model(state)


def _cached_flatbuffer(cache_dir: Path) -> bytes | None:
    """Return the cached TFLite model if the manifest vouches for it, else ``None``."""
    try:
        manifest = json.loads((cache_dir / _MANIFEST_FILE).read_text(encoding="utf-8"))
        flatbuffer = (cache_dir / _TFLITE_FILE).read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    expected = {"model_version": MODEL_VERSION, "weights_sha256": WEIGHTS_SHA256}
    if any(manifest.get(key) != value for key, value in expected.items()):
        return None
    # A truncated or foreign file must not be fed to the interpreter.
    if manifest.get("tflite_sha256") != hashlib.sha256(flatbuffer).hexdigest():
        return None
    return flatbuffer


def _convert_and_cache(cache_dir: Path, weights_path: Path | None) -> bytes:
    """Build Keras, convert to TFLite, check agreement, and store model + manifest atomically."""
    tf = tensorflow()
    model = _build_keras(weights_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as scratch:
        saved_model = Path(scratch) / "saved_model"
        with quiet_native_stderr():
            model.export(str(saved_model), format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
            flatbuffer = bytes(converter.convert())
    _check_conversion(_KerasNetwork(model), _TfliteNetwork(flatbuffer, num_threads=1))
    manifest = {
        "model_version": MODEL_VERSION,
        "weights_sha256": WEIGHTS_SHA256,
        "tflite_sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "tensorflow": str(tf.__version__),
    }
    # Model first, manifest last: a reader that sees the manifest also sees a complete model.
    _write_atomic(cache_dir / _TFLITE_FILE, flatbuffer)
    _write_atomic(cache_dir / _MANIFEST_FILE, json.dumps(manifest, indent=2).encode("utf-8"))
    return flatbuffer


def _check_conversion(reference: _Network, converted: _Network) -> None:
    """Raise :class:`EmbedderError` unless both networks agree on a fixed probe batch."""
    rng = np.random.default_rng(20240601)
    ramp = np.linspace(0.0, 255.0, IMAGE_SIZE, dtype=np.float32)
    probe = np.stack(
        [
            np.broadcast_to(ramp[None, :, None], (IMAGE_SIZE, IMAGE_SIZE, 3)),
            rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32),
        ]
    )
    ref_features, ref_logits = reference.run(probe)
    new_features, new_logits = converted.run(probe)
    gap = float(np.abs(normalise_rows(ref_features) - normalise_rows(new_features)).max())
    if gap > _CONVERSION_TOLERANCE or not np.array_equal(
        ref_logits.argmax(axis=1), new_logits.argmax(axis=1)
    ):
        raise EmbedderError(f"TFLite conversion disagrees with Keras (max embedding gap {gap:.2e})")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the cache from other service users
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
