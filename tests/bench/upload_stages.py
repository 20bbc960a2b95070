"""Provides the CPU one upload costs, stage by stage, outside any server (issue 19's breakdown).

The upload benchmark (:mod:`tests.bench.bench_uploads`) measures the whole server process; this
measures each CPU stage of one upload on its own, in this one thread, as process CPU time (user +
system, so libvips's worker thread counts), which the load other processes put on a shared
machine changes far less than wall time. The stages are the calls the server makes, with
pictures encrypted at rest as the server runs by default:

* the client's SHA-256 of the file (``pixmart upload`` sends it with the first request);
* the chunk sealed as an upload record on arrival, opened again and hashed at the finish;
* validation with the decode the derivatives are made from, and the derivatives, split into the
  resizes (with the hand-over of pixels to libvips) and the two WebP encodes (from a profile of
  the call); the sanitised original;
* the original sealed into the store under the hash finish computed, its clean copy hashed and
  sealed, the thumbnail and the preview hashed and sealed for their rows.

What is left of the server's CPU per picture (TLS, websocket frames, the event loop, the
database, file writes and fsyncs) is the benchmark's figure less the sum of these.

Run with ``.venv/bin/python -m tests.bench.upload_stages [3mp|24mp] [COUNT]``.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.atrest.envelope import Sealer
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.records import (
    new_file_header,
    open_cipher,
    open_records,
    seal_record,
    upload_context,
)
from backend.catalogue.processing import PreparedPicture
from backend.media.derivatives import decode_size, derive
from backend.media.sanitize import sanitized_original
from backend.media.validate import DEFAULT_LIMITS, inspect_and_decode
from tests.bench.bench_catalogue import write_photos
from tests.bench.bench_uploads import write_large_photos

#: The server's default chunk size (``Limits.upload_chunk_bytes``).
CHUNK_BYTES: Final = 1024 * 1024
#: Functions inside ``derive`` whose cumulative CPU is reported, by (module file, name).
DERIVE_PARTS: Final = {
    "  resizes (libvips Lanczos-3, hand-over included)": ("resample.py", "resampled"),
    "    of which pixels packed for libvips": ("resample.py", "_vips"),
    "  WebP encodes (preview + thumbnail)": ("derivatives.py", "_encode_webp"),
}

T = TypeVar("T")


class StageClock:
    """CPU milliseconds per stage, one list of samples per stage name."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def run(self, stage: str, work: Callable[[], T]) -> T:
        """Run ``work`` and add its process CPU time to ``stage``."""
        started = time.process_time()
        result = work()
        self.add(stage, (time.process_time() - started) * 1000)
        return result

    def add(self, stage: str, milliseconds: float) -> None:
        """Add one sample to ``stage``."""
        self.samples.setdefault(stage, []).append(milliseconds)


def upload_once(path: Path, sealer: Sealer, clock: StageClock) -> None:
    """Run the CPU stages of one upload of ``path`` (see the module docstring)."""
    data = path.read_bytes()
    sha256 = clock.run("client: SHA-256 of the file", lambda: hashlib.sha256(data).hexdigest())
    context = upload_context("bench")
    header = new_file_header(sealer, context)
    cipher = open_cipher(sealer, header, context)
    records = clock.run(
        "receive: chunks sealed as upload records",
        lambda: [
            seal_record(cipher, context, offset, data[offset : offset + CHUNK_BYTES])
            for offset in range(0, len(data), CHUNK_BYTES)
        ],
    )
    upload_file = header + b"".join(records)
    clock.run(
        "finish: records opened, SHA-256 checked",
        lambda: _open_and_hash(cipher, context, upload_file),
    )
    info, decoded = clock.run(
        "validation and decode", lambda: inspect_and_decode(path, DEFAULT_LIMITS, decode_size)
    )
    profile = cProfile.Profile(time.process_time)
    derivatives = clock.run("derivatives", lambda: profile.runcall(derive, decoded, info))
    _add_parts(clock, pstats.Stats(profile))
    clean = clock.run(
        "sanitised original (metadata stripped)",
        lambda: sanitized_original(path.read_bytes(), info),
    )
    prepared = PreparedPicture(info=info, clean=clean, derivatives=derivatives)
    clock.run(
        "store: original sealed, clean copy hashed and sealed",
        # The original's hash is finish's (put_file's expected_sha256): it is not hashed again.
        lambda: [
            sealer.seal(data, sha256.encode("ascii")),
            _hash_and_seal(sealer, prepared.clean),
        ],
    )
    clock.run(
        "rows: thumbnail and preview hashed and sealed",
        lambda: [
            _hash_and_seal(sealer, blob)
            for blob in (prepared.derivatives.thumbnail, prepared.derivatives.preview)
        ],
    )


def _open_and_hash(cipher: AESGCM, context: bytes, upload_file: bytes) -> str:
    """Open every record of a sealed upload's file and hash the plaintext, as finish does."""
    digest = hashlib.sha256()
    for chunk in open_records(io.BytesIO(upload_file), cipher, context, len(upload_file)):
        digest.update(chunk)
    return digest.hexdigest()


def _hash_and_seal(sealer: Sealer, blob: bytes) -> bytes:
    """Hash ``blob`` for its name and seal it, as the sealed picture store does."""
    return sealer.seal(blob, hashlib.sha256(blob).hexdigest().encode("ascii"))


def _add_parts(clock: StageClock, stats: pstats.Stats) -> None:
    """Add the cumulative CPU of :data:`DERIVE_PARTS` in one profiled ``derive``."""
    totals = dict.fromkeys(DERIVE_PARTS, 0.0)
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for part, (module, function) in DERIVE_PARTS.items():
            if filename.endswith(os.sep + module) and name == function:
                totals[part] += row[3] * 1000  # cumulative time
    for part, milliseconds in totals.items():
        clock.add(part, milliseconds)


def measure(paths: list[Path], rounds: int = 2) -> dict[str, float]:
    """Median CPU milliseconds per stage over ``paths``; the first round only warms up."""
    sealer = Sealer(KeySet(MasterKey.from_bytes(os.urandom(32))))
    clock = StageClock()
    for _ in range(rounds):
        clock = StageClock()
        for path in paths:
            upload_once(path, sealer, clock)
    return {stage: statistics.median(values) for stage, values in clock.samples.items()}


def _report(label: str, medians: dict[str, float]) -> None:
    print(f"{label}: CPU per picture, median (ms)")
    for stage, milliseconds in medians.items():
        print(f"  {stage:55s} {milliseconds:7.1f}")
    total = sum(value for stage, value in medians.items() if not stage.startswith("  "))
    print(f"  {'sum of the stages':55s} {total:7.1f}")


def main(arguments: list[str]) -> None:
    """Measure the set named first (``3mp`` or ``24mp``), with the count given second."""
    which = arguments[0] if arguments else "3mp"
    with tempfile.TemporaryDirectory(prefix="pixmart-upload-stages-") as tmp:
        if which == "24mp":
            count = int(arguments[1]) if len(arguments) > 1 else 6
            paths = write_large_photos(Path(tmp), count)
        else:
            count = int(arguments[1]) if len(arguments) > 1 else 40
            paths = write_photos(Path(tmp), count)
        _report(f"{which}, {count} JPEGs", measure(paths))


if __name__ == "__main__":
    main(sys.argv[1:])
