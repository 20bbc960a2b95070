"""Provides the image embedder: EfficientNet-Lite0 as an int8 TFLite model (or Keras), batched.

The first :class:`Embedder` built for a cache directory parses the shipped PyTorch weights,
builds the Keras model, exports it as a SavedModel, converts that to a fully int8-quantised
TFLite flatbuffer (calibrated on the shipped pictures of :mod:`backend.vision.calibration`),
checks that the quantised model still agrees with Keras, and stores ``model.tflite`` plus a
manifest in the cache directory. All of that runs in a child process, so the server never holds
the converter's gigabyte. Embedders load the flatbuffer with the LiteRT interpreter
(``ai-edge-litert``): running the model needs no TensorFlow import at all.

Why int8: on the 2-core target machine XNNPACK runs the int8 model at about 450 pictures/s
against 150-200 for float32 TFLite and 60-100 for Keras (``tests/bench/bench_vision.py``). The
quantised embeddings differ from the float ones (cosine about 0.985 on average), but retrieval
quality measured on held-out pictures is the same within noise, and the classifier's top class
stays in the top 5. Embeddings of different runtimes are therefore not comparable and carry
different versions (:data:`MODEL_VERSION` for the int8 model, :data:`REFERENCE_MODEL_VERSION` for
Keras float32).

The network returns its last feature map and the last but one stage's output; the embedding
pools both into a two-part descriptor (:func:`backend.vision.pooling.describe`), centres it on
the shipped mean descriptor and weighs the parts into one unit vector
(:mod:`backend.vision.centring`), then whitens that by the shipped linear map
(:mod:`backend.vision.whitening`).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from backend.vision.calibration import CALIBRATION_SHA256, calibration_batch
from backend.vision.centring import centre_rows
from backend.vision.model import MID_CHANNELS
from backend.vision.pooling import describe
from backend.vision.pooling import normalise_rows as normalise_rows
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
from backend.vision.whitening import whiten_rows
from backend.vision.worker import EmbeddingWorker as EmbeddingWorker

#: Bump when preprocessing, the graph, the quantisation or its calibration set changes embeddings.
#: (1: float32 TFLite; 2: int8 TFLite calibrated on the shipped demo photographs; 3: the whole
#: picture letterboxed on white, and GeM pooling of the last feature map; 4: the picture cropped to
#: its content before the letterbox, and embeddings centred on the shipped mean; 5: the last but
#: one stage's map pooled beside the last one, each square-rooted, and a mean refitted for it;
#: 6: the centred embedding whitened by a shipped map.)
PIPELINE_REVISION: Final = 6
#: Recorded with every stored embedding; embeddings of different versions are not comparable.
MODEL_VERSION: Final = f"efficientnet-lite0@{WEIGHTS_SHA256[:8]}/v{PIPELINE_REVISION}-int8"
#: The version of embeddings made by the float32 Keras reference runtime.
REFERENCE_MODEL_VERSION: Final = f"efficientnet-lite0@{WEIGHTS_SHA256[:8]}/v{PIPELINE_REVISION}-f32"

Runtime = Literal["tflite", "keras"]

_TFLITE_FILE: Final = "model.tflite"
_MANIFEST_FILE: Final = "manifest.json"
# Bounds the activation memory of one interpreter call (several MB per picture at 224x224).
_MAX_CHUNK: Final = 64
# Agreement the quantised model must keep with Keras on the calibration pictures, checked once
# after every conversion. Measured on the GeM embeddings of pipeline revision 3: cosine min 0.932,
# mean 0.987, the top class kept in the top 5 for all 76 pictures (revision 2's average pooling:
# 0.909, 0.984 and 75 of 76, the miss a texture the classifier is unsure about anyway). Revision
# 5's two-part descriptors: 0.961 and 0.992 (after centring 0.931 and 0.980), 76 of 76.
_MIN_COSINE: Final = 0.85
_MIN_MEAN_COSINE: Final = 0.97
_MIN_TOP_CLASS_KEPT: Final = 0.95


class EmbedderError(RuntimeError):
    """Raised when the model cannot be built, converted or loaded."""


class ConversionCancelled(EmbedderError):
    """Raised when the server stopped while the model was still being converted."""


def default_cache_dir(data_dir: Path) -> Path:
    """Return the model cache folder for ``data_dir``, keyed by the weights' hash."""
    return data_dir / "models" / WEIGHTS_SHA256[:16]


class NetworkOutputs(NamedTuple):
    """What the network returns for a chunk of N pictures."""

    #: float32 [N, 7, 7, 1280], the last feature map.
    feature_map: NDArray[np.float32]
    #: float32 [N, 1000], the ImageNet logits.
    logits: NDArray[np.float32]
    #: float32 [N, 7, 7, 192], the last but one stage's output.
    mid_map: NDArray[np.float32]


class _Network(Protocol):
    """A float32 [N, 224, 224, 3] -> :class:`NetworkOutputs` function."""

    def run(self, pixels: NDArray[np.float32]) -> NetworkOutputs:
        """Run the network on one chunk."""
        ...


class _KerasNetwork:
    """The network as a Keras model (reference runtime; also used to check conversions)."""

    def __init__(self, model: Any) -> None:  # noqa: ANN401 - keras.Model, imported lazily
        self._model = model

    def run(self, pixels: NDArray[np.float32]) -> NetworkOutputs:
        outputs = self._model.predict_on_batch(pixels)
        return NetworkOutputs(*(np.asarray(output, np.float32) for output in outputs))


class _TfliteNetwork:
    """The network as a LiteRT interpreter (XNNPACK); not thread-safe, callers serialise."""

    def __init__(self, flatbuffer: bytes, num_threads: int) -> None:
        # LiteRT, not tf.lite: the same runtime without importing TensorFlow (deprecated there).
        from ai_edge_litert.interpreter import Interpreter

        with quiet_native_stderr():
            interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
            self._runner = interpreter.get_signature_runner("serving_default")
            probe = self._runner(pixels=np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
        # Keras' export names outputs output_0/output_1/...; match them by shape, not order.
        self._map_key = _output_key(probe, 4, EMBEDDING_DIM)
        self._logits_key = _output_key(probe, 2, NUM_CLASSES)
        self._mid_key = _output_key(probe, 4, MID_CHANNELS)
        self._interpreter = interpreter  # the runner needs it alive

    def run(self, pixels: NDArray[np.float32]) -> NetworkOutputs:
        # The runner resizes the input tensor when the batch size changes (cheap, ~1 ms).
        outputs = self._runner(pixels=pixels)
        # The runner hands out float32 copies the interpreter no longer touches: taking them as
        # they are saves copying 8 MB of feature maps (about 1 ms per batch of 32).
        return NetworkOutputs(
            np.asarray(outputs[self._map_key], np.float32),
            np.asarray(outputs[self._logits_key], np.float32),
            np.asarray(outputs[self._mid_key], np.float32),
        )


def _output_key(outputs: dict[str, NDArray[Any]], rank: int, width: int) -> str:
    """Return the name of the single output of ``rank`` dimensions, the last ``width`` long."""
    keys = [key for key, value in outputs.items()
            if value.ndim == rank and value.shape[-1] == width]
    if len(keys) != 1:
        raise EmbedderError(
            f"TFLite model has no unique {rank}-D output of width {width}: {list(outputs)}"
        )
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
        cancel: threading.Event | None = None,
    ) -> None:
        """Load the model from ``cache_dir``, building and caching it first if needed.

        Args:
            cache_dir: Folder for the converted model, normally :func:`default_cache_dir`
                (the Keras runtime builds from the weights every time and ignores it).
            runtime: ``"tflite"`` (fast, default) or ``"keras"`` (reference).
            num_threads: Threads the TFLite interpreter may use.
            weights_path: The checkpoint; defaults to the packaged one. It must have the
                expected SHA-256 either way.
            cancel: Set it to stop a conversion in progress (raises ConversionCancelled).

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
                flatbuffer = _build_model_file(cache_dir, weights_path, cancel)
            self._network = _TfliteNetwork(flatbuffer, num_threads)
        else:
            raise ValueError(f"unknown runtime {runtime!r}")

    @property
    def model_version(self) -> str:
        """The version string to store next to every embedding this embedder makes."""
        return REFERENCE_MODEL_VERSION if self._runtime == "keras" else MODEL_VERSION

    @property
    def runtime(self) -> Runtime:
        """Which runtime executes the network."""
        return self._runtime

    def embed(self, batch: NDArray[np.uint8]) -> EmbedBatch:
        """Embed a batch of preprocessed pictures (see :func:`preprocess`).

        Args:
            batch: uint8 ``[N, 224, 224, 3]`` RGB pictures.

        Returns:
            L2-normalised, centred and whitened float32 ``[N, 1280]`` embeddings and float32
            ``[N, 1000]`` softmax probabilities over the ImageNet classes.

        Raises:
            ValueError: ``batch`` has the wrong dtype or shape.
        """
        batch = check_batch(batch)
        with self._lock:
            features, logits = _run_chunked(self._network, batch)
        return EmbedBatch(whiten_rows(centre_rows(features)), softmax(logits))

    def uncentred(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Return the descriptors before centring (what the mean is fitted on), float32
        ``[N, 1280]``, each part of unit norm (:func:`backend.vision.pooling.describe`).

        Raises:
            ValueError: ``batch`` has the wrong dtype or shape.
        """
        batch = check_batch(batch)
        with self._lock:
            features, _ = _run_chunked(self._network, batch)
        return features

    def network_outputs(self, batch: NDArray[np.uint8]) -> NetworkOutputs:
        """Return the network's outputs, before any pooling (for studies of pooling).

        Args:
            batch: uint8 ``[N, 224, 224, 3]`` RGB pictures.

        Raises:
            ValueError: ``batch`` has the wrong dtype or shape.
        """
        batch = check_batch(batch)
        with self._lock:
            chunks = [self._network.run(batch[start : start + _MAX_CHUNK].astype(np.float32))
                      for start in range(0, len(batch), _MAX_CHUNK)]
        return NetworkOutputs(*(np.concatenate(parts) for parts in zip(*chunks, strict=True)))


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
    expected = {
        "model_version": MODEL_VERSION,
        "weights_sha256": WEIGHTS_SHA256,
        "calibration_sha256": CALIBRATION_SHA256,
    }
    if any(manifest.get(key) != value for key, value in expected.items()):
        return None
    # A truncated or foreign file must not be fed to the interpreter.
    if manifest.get("tflite_sha256") != hashlib.sha256(flatbuffer).hexdigest():
        return None
    return flatbuffer


def _build_model_file(
    cache_dir: Path, weights_path: Path | None, cancel: threading.Event | None = None
) -> bytes:
    """Convert and cache the model in a child process and return the flatbuffer.

    TensorFlow, the Keras graph and the quantiser take about a gigabyte while converting, which
    a long-running server would otherwise keep as its peak (and partly as its resident size)
    for good. A spawned child gives all of it back when it exits; its exceptions (a tampered
    checkpoint, a failed agreement check) arrive here as the same types. Setting ``cancel``
    (a server stopping during its first start) kills the child at once.

    Raises:
        ConversionCancelled: ``cancel`` was set before the child finished.
        EmbedderError: The child died (killed, out of memory) or the conversion failed.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_convert_in_child, args=(cache_dir, weights_path, sender), name="pixmart-convert"
    )
    child.start()
    sender.close()  # the child holds the only sending end: EOF means it died
    try:
        while not receiver.poll(0.1):
            if cancel is not None and cancel.is_set():
                raise ConversionCancelled("the model conversion was cancelled")
            if not child.is_alive() and not receiver.poll():
                raise EmbedderError(f"the model conversion process died (exit {child.exitcode})")
        try:
            outcome: bytes | BaseException = receiver.recv()
        except EOFError:
            raise EmbedderError("the model conversion process died without an answer") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _convert_in_child(
    cache_dir: Path, weights_path: Path | None, sender: multiprocessing.connection.Connection
) -> None:
    """The conversion child's main: send back the flatbuffer, or the exception that stopped it."""
    try:
        outcome: bytes | BaseException = _convert_and_cache(cache_dir, weights_path)
    except Exception as exc:  # every failure crosses the process boundary with its own type
        outcome = exc
    sender.send(outcome)
    sender.close()


def _convert_and_cache(cache_dir: Path, weights_path: Path | None) -> bytes:
    """Build Keras, quantise to int8 TFLite, check agreement, store model + manifest atomically."""
    model = _build_keras(weights_path)  # checks the checkpoint's hash first
    calibration = calibration_batch().astype(np.float32)
    tf = tensorflow()
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    flatbuffer = quantise(model, calibration, scratch_parent=cache_dir)
    _check_conversion(_KerasNetwork(model), _TfliteNetwork(flatbuffer, num_threads=2), calibration)
    manifest = {
        "model_version": MODEL_VERSION,
        "weights_sha256": WEIGHTS_SHA256,
        "calibration_sha256": CALIBRATION_SHA256,
        "tflite_sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "tensorflow": str(tf.__version__),
    }
    # Model first, manifest last: a reader that sees the manifest also sees a complete model.
    _write_atomic(cache_dir / _TFLITE_FILE, flatbuffer)
    _write_atomic(cache_dir / _MANIFEST_FILE, json.dumps(manifest, indent=2).encode("utf-8"))
    return flatbuffer


def quantise(
    model: Any,  # noqa: ANN401 - keras.Model, imported lazily
    calibration: NDArray[np.float32],
    *,
    scratch_parent: Path | None = None,
) -> bytes:
    """Return ``model`` converted to a fully int8 TFLite flatbuffer (float32 input and outputs).

    Args:
        model: A Keras model whose input is named ``pixels``.
        calibration: Representative float32 pictures; they set each activation's int8 range.
        scratch_parent: Where the temporary SavedModel goes (default: the system's temp dir).
    """
    tf = tensorflow()
    with tempfile.TemporaryDirectory(dir=scratch_parent, prefix=".build-") as scratch:
        saved_model = Path(scratch) / "saved_model"
        with quiet_native_stderr(), warnings.catch_warnings():
            # The quantiser runs calibration through tf.lite.Interpreter, which warns that it
            # moved to ai_edge_litert; the converter itself has not moved.
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            model.export(str(saved_model), format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
            # Weights and activations in int8 (input and outputs stay float32 for callers);
            # the representative dataset sets each activation's range.
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = lambda: (
                {"pixels": calibration[i : i + 1]} for i in range(len(calibration))
            )
            return bytes(converter.convert())


def _check_conversion(
    reference: _Network, converted: _Network, probe: NDArray[np.float32]
) -> None:
    """Raise :class:`EmbedderError` unless the converted network still agrees with the reference.

    Agreement means: the embeddings of every probe picture point the same way (cosine at least
    :data:`_MIN_COSINE`, on average at least :data:`_MIN_MEAN_COSINE`) and the reference's top
    class is among the converted model's top 5 for nearly every picture. Quantisation moves every
    number a little, so an elementwise tolerance would be meaningless; a broken conversion fails
    these by far (a random network scores a mean cosine near 0.5).
    """
    ref_features, ref_logits = _run_chunked(reference, probe)
    new_features, new_logits = _run_chunked(converted, probe)
    cosines = np.sum(normalise_rows(ref_features) * normalise_rows(new_features), axis=1)
    # "Among the top 5" as a value test, not argsort positions: int8 logits take few distinct
    # values, and how argsort orders a tie for 5th place depends on the platform.
    fifth_largest = np.sort(new_logits, axis=1)[:, -5]
    reference_class = ref_logits.argmax(axis=1)
    top_class_kept = new_logits[np.arange(len(probe)), reference_class] >= fifth_largest
    if (
        float(cosines.min()) < _MIN_COSINE
        or float(cosines.mean()) < _MIN_MEAN_COSINE
        or float(top_class_kept.mean()) < _MIN_TOP_CLASS_KEPT
    ):
        raise EmbedderError(
            "TFLite conversion disagrees with Keras (embedding cosine min"
            f" {cosines.min():.3f}, mean {cosines.mean():.3f}; top class kept in top 5 for"
            f" {int(top_class_kept.sum())} of {len(probe)} pictures)"
        )


def _run_chunked(
    network: _Network, pixels: NDArray[np.uint8] | NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return the uncentred descriptors and the logits of ``pixels``, in chunks of at most
    :data:`_MAX_CHUNK` pictures.

    Each chunk is cast to float32 on its own, so a large uint8 batch never exists as a whole
    float32 copy, and each chunk's feature maps are pooled at once (they are 49 times the size
    of the descriptor).
    """
    parts = [_pooled(network.run(pixels[start : start + _MAX_CHUNK].astype(np.float32,
                                                                           copy=False)))
             for start in range(0, len(pixels), _MAX_CHUNK)]
    return (np.concatenate([features for features, _ in parts]),
            np.concatenate([logits for _, logits in parts]))


def _pooled(outputs: NetworkOutputs) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return ``(descriptor, logits)`` for one chunk's network outputs."""
    return describe(outputs.feature_map, outputs.mid_map), outputs.logits


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file.

    The file is 0600 (``mkstemp``'s mode), like everything else in the data dir: only the
    server's own user ever loads the model.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
