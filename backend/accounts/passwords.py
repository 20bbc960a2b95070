"""Provides Argon2id password hashing (cryptography's KDF) in PHC string format."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

# OWASP's minimum for Argon2id: 19 MiB, two passes, one lane (about 30 ms on this machine).
MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1


def hash_password(password: str) -> str:
    """Return a PHC-encoded Argon2id hash of ``password`` with a fresh 16-byte salt."""
    kdf = Argon2id(
        salt=os.urandom(16), length=32, iterations=ITERATIONS, lanes=LANES, memory_cost=MEMORY_KIB
    )
    return kdf.derive_phc_encoded(password.encode("utf-8"))


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the PHC-encoded hash (constant-time comparison)."""
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), encoded)
    except (InvalidKey, ValueError):
        return False
    return True


#: Verified against when the user does not exist, so both failures cost the same time.
DUMMY_HASH = hash_password("pixmart-timing-equaliser")
