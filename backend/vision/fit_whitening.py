"""Provides ``python -m backend.vision.fit_whitening DIR... --out FILE``: fit the shipped whitening.

Every picture under the folders given goes through the upload pipeline
(:func:`backend.vision.evaluate.load_picture`: validation, decoding, preprocessing), the int8
network and the centring on the shipped mean (:func:`backend.vision.centring.centre_rows`); a
shrunk PCA whitening (:func:`backend.vision.whitening.fit`) is fitted on those embeddings and
written as :mod:`backend.vision.whitening` reads it. It prints the new file's SHA-256: put it in
:data:`backend.vision.whitening.WHITENING_SHA256` (and bump the pipeline revision).

The shipped map was fitted on the unlabelled pool of :mod:`tests.support.vision_pool`::

    python -m tests.support.vision_pool /tmp/pool
    python -m backend.vision.fit_whitening /tmp/pool --out data/vision_whitening.npy
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from backend.vision.centring import centre_rows
from backend.vision.fit_mean import describe_files, fitting_command, picture_files
from backend.vision.whitening import fit, to_bytes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args, embedder = fitting_command("python -m backend.vision.fit_whitening",
                                     "the map file to write", argv)
    rows = centre_rows(describe_files(picture_files(args.folders), embedder))
    content = to_bytes(fit(rows))
    args.out.write_bytes(content)
    print(f"{args.out}: {len(rows)} pictures, SHA-256 {hashlib.sha256(content).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
