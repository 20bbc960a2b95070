"""Tests for the EfficientNet-Lite0 port, its TFLite conversion and the model cache."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.vision import embedder as embedder_module
from backend.vision.calibration import CalibrationError, calibration_batch, calibration_files
from backend.vision.embedder import (
    MODEL_VERSION,
    REFERENCE_MODEL_VERSION,
    Embedder,
    EmbedderError,
    NetworkOutputs,
)
from backend.vision.labels import load_labels
from backend.vision.model import StateDictError, build_keras_model
from backend.vision.weights import (
    WEIGHTS_SHA256,
    WeightsChecksumError,
    default_weights_path,
    load_state_dict,
)
from tests.unit.vision_fixtures import (
    preprocessed,
    sample_picture,
    shared_cache_dir,
    shared_embedder,
    shared_keras_embedder,
)

# What a correct port must see (any one of these among the top 5).
#: The first of the run to convert the model (and the Keras reference): run first, so the
#: servers of the vision tests after it find the model in the run's cache.
pytestmark = pytest.mark.long_running

EXPECTED_CLASSES = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup", "coffee mug"},
    "rocket": {"missile", "projectile", "space shuttle"},
    "camera": {"tripod", "reflex camera"},
    "motorcycle": {"moped", "motor scooter", "crash helmet", "disc brake"},
}


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return shared_embedder(tmp_path_factory)


@pytest.fixture(scope="module")
def pictures() -> np.ndarray:
    return np.stack([preprocessed(sample_picture(name)) for name in EXPECTED_CLASSES])


def test_known_objects_get_their_imagenet_class_in_top5(
    embedder: Embedder, pictures: np.ndarray
) -> None:
    names = [synonyms[0] for synonyms in load_labels()]
    probabilities = embedder.embed(pictures).probabilities
    for (picture, expected), row in zip(EXPECTED_CLASSES.items(), probabilities, strict=True):
        top5 = {names[i] for i in np.argsort(-row)[:5]}
        assert top5 & expected, f"{picture}: top-5 {top5} has none of {expected}"


def test_embeddings_are_unit_norm_and_1280_wide(embedder: Embedder, pictures: np.ndarray) -> None:
    result = embedder.embed(pictures)
    assert result.embeddings.shape == (len(pictures), 1280)
    assert result.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)
    assert result.probabilities.shape == (len(pictures), 1000)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_the_network_returns_both_maps_and_the_logits(
    embedder: Embedder, pictures: np.ndarray
) -> None:
    outputs = embedder.network_outputs(pictures[:2])
    assert outputs.feature_map.shape == (2, 7, 7, 1280)
    assert outputs.mid_map.shape == (2, 7, 7, 192)
    assert outputs.logits.shape == (2, 1000)
    # The head's map is a ReLU6 output; the mid map is a residual sum and goes negative.
    assert outputs.feature_map.min() >= 0 and outputs.mid_map.min() < 0


def test_batch_size_does_not_change_results(embedder: Embedder, pictures: np.ndarray) -> None:
    together = embedder.embed(pictures).embeddings
    alone = np.concatenate([embedder.embed(pictures[i : i + 1]).embeddings
                            for i in range(len(pictures))])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_int8_model_stays_close_to_the_float_reference(
    embedder: Embedder, pictures: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = shared_keras_embedder(tmp_path_factory)
    fast = embedder.embed(pictures)
    slow = reference.embed(pictures)
    # These pictures are not calibration pictures; measured cosines 0.96-0.99.
    cosines = np.sum(fast.embeddings * slow.embeddings, axis=1)
    assert cosines.min() > 0.9, cosines
    for quantised, exact in zip(fast.probabilities, slow.probabilities, strict=True):
        assert exact.argmax() in np.argsort(-quantised)[:5]
    # Not interchangeable, so never stored under one version.
    assert embedder.model_version == MODEL_VERSION
    assert reference.model_version == REFERENCE_MODEL_VERSION != MODEL_VERSION


def test_model_version_names_the_weights_and_the_quantisation() -> None:
    assert MODEL_VERSION == f"efficientnet-lite0@{WEIGHTS_SHA256[:8]}/v6-int8"


def test_quantised_model_runs_without_tensorflow(
    embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from backend.vision.embedder import Embedder\n"
        f"embedder = Embedder(Path({str(shared_cache_dir(tmp_path_factory))!r}))\n"
        "embedder.embed(np.zeros((2, 224, 224, 3), np.uint8))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_calibration_set_is_pinned(tmp_path: Path) -> None:
    pictures = calibration_files()
    assert len(pictures) >= 30
    assert calibration_batch().shape == (2 * len(pictures), 224, 224, 3)
    (tmp_path / pictures[0].name).write_bytes(pictures[0].read_bytes() + b"changed")
    with pytest.raises(CalibrationError, match="CALIBRATION_SHA256"):
        calibration_batch(tmp_path)
    with pytest.raises(CalibrationError, match="no calibration pictures"):
        calibration_batch(tmp_path / "empty")


def test_second_embedder_loads_the_cache_without_converting(
    embedder: Embedder, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> bytes:
        raise AssertionError("cache was not used")

    monkeypatch.setattr(embedder_module, "_build_model_file", refuse)
    started = time.perf_counter()
    again = Embedder(shared_cache_dir(tmp_path_factory))
    assert time.perf_counter() - started < 5
    picture = preprocessed(sample_picture("coffee"))[None]
    np.testing.assert_allclose(again.embed(picture).embeddings, embedder.embed(picture).embeddings)


def test_a_tampered_checkpoint_fails_the_build_with_its_own_error(tmp_path: Path) -> None:
    tampered = tmp_path / "weights.pth"
    raw = bytearray(default_weights_path().read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one weight changed: parses fine, hash differs
    tampered.write_bytes(raw)
    # The conversion runs in a child process; its typed error must arrive unchanged.
    with pytest.raises(WeightsChecksumError):
        Embedder(tmp_path / "cache", weights_path=tampered)
    assert not (tmp_path / "cache" / "manifest.json").exists()


def test_corrupt_cache_is_not_trusted(embedder: Embedder, tmp_path: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    source = shared_cache_dir(tmp_path_factory)
    for name in ("model.tflite", "manifest.json"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    assert embedder_module._cached_flatbuffer(tmp_path) is not None
    model = tmp_path / "model.tflite"
    model.write_bytes(model.read_bytes()[:-100])
    assert embedder_module._cached_flatbuffer(tmp_path) is None


def test_wrong_input_is_rejected(embedder: Embedder) -> None:
    with pytest.raises(ValueError):
        embedder.embed(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ValueError):
        embedder.embed(np.zeros((1, 200, 224, 3), np.uint8))


def test_conversion_check_catches_disagreement() -> None:
    class Constant:
        def __init__(self, channel: int) -> None:
            self.channel = channel

        def run(self, pixels: np.ndarray) -> NetworkOutputs:
            # Maps that fire in one channel (ReLU6 outputs are never negative).
            feature_map = np.full((len(pixels), 7, 7, 1280), 0.01, np.float32)
            feature_map[..., self.channel] = 5.0
            mid_map = np.full((len(pixels), 7, 7, 192), 0.01, np.float32)
            mid_map[..., self.channel % 192] = 5.0
            logits = np.zeros((len(pixels), 1000), np.float32)
            return NetworkOutputs(feature_map, logits, mid_map)

    probe = np.zeros((4, 224, 224, 3), np.float32)
    embedder_module._check_conversion(Constant(3), Constant(3), probe)
    with pytest.raises(EmbedderError, match="cosine"):
        embedder_module._check_conversion(Constant(3), Constant(700), probe)


def test_state_dict_must_match_the_architecture(embedder: Embedder) -> None:
    state = load_state_dict()
    missing = dict(state)
    del missing["_blocks.3._expand_conv.weight"]
    with pytest.raises(StateDictError, match="_blocks.3._expand_conv.weight"):
        build_keras_model(missing)
    extra = dict(state)
    extra["_blocks.16._depthwise_conv.weight"] = np.zeros((8, 1, 3, 3), np.float32)
    with pytest.raises(StateDictError, match="not used"):
        build_keras_model(extra)


def test_importing_backend_vision_does_not_load_tensorflow() -> None:
    code = (
        "import sys\n"
        "import backend.vision.embedder, backend.vision.index, backend.vision.labels\n"
        "import backend.vision.evaluate, backend.vision.worker, backend.vision.model\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
