"""Provides a lazy, quiet TensorFlow import for the vision code.

Importing TensorFlow costs seconds and hundreds of megabytes, so backend modules never import it
at module level: they call :func:`tensorflow` when a model is first needed. TensorFlow's C++ side
prints INFO banners (oneDNN, CUDA stubs, XNNPACK) straight to file descriptor 2 before any log
level applies; :func:`quiet_native_stderr` captures fd 2 around such calls and replays whatever
was not one of those banners, so genuine errors (and other threads' output) are not lost.
Set ``PIXMART_TF_VERBOSE=1`` to see everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Final

# Lines TensorFlow/TFLite print on start-up that carry no information for an operator.
_NOISE: Final = re.compile(
    rb"^(?:[IW]\d{4} .*(?:cudart_stub|port\.cc|cpu_feature_guard|xla_bridge|"
    rb"computation_placer|service\.cc)|WARNING: All log messages before absl::InitializeLog|"
    rb"INFO: Created TensorFlow Lite XNNPACK delegate|To enable the following instructions:|"
    rb"fully_quantize: \d+, inference_type|"
    rb"\S*cpu_feature_guard).*$"
)
_CAPTURE_LOCK: Final = threading.Lock()
_import_lock: Final = threading.Lock()
_tf: ModuleType | None = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture fd 2 for the duration of the block and replay lines that are not TF banners."""
    if os.environ.get("PIXMART_TF_VERBOSE") == "1":
        yield
        return
    with _CAPTURE_LOCK, tempfile.TemporaryFile() as capture:
        _flush_stderr()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (detached daemon): nothing to keep quiet
            yield
            return
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True)
                    if not _NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def _flush_stderr() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()


def tensorflow() -> ModuleType:
    """Import TensorFlow once, with its Python and C++ logging turned down, and return it."""
    global _tf
    with _import_lock:
        if _tf is None:
            # Must be set before the first import: the C++ runtime reads it once.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            with quiet_native_stderr():
                import tensorflow as tf
            tf.get_logger().setLevel("ERROR")
            _tf = tf
        return _tf

