"""Passwords and API keys that callers present to a channel, kept as salted PBKDF2-SHA256
hashes (`pbkdf2_sha256$ITERATIONS$SALT$HASH`, salt and hash in URL-safe base64): a copy of
the ODB does not give them away.

A hash costs milliseconds by design, too much for every request of a busy channel, so a
`Verifier` remembers the credentials it accepted (by a SHA-256 of the stored hash and what was
presented, never the password itself) and hashes only what it has not seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

SCHEME = "pbkdf2_sha256"
ITERATIONS = 100_000  # about 30 ms here; the count is kept in each hash, so it can grow later


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)


def hash_secret(secret: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(_derive(secret, salt, iterations))}"


def is_hash(stored: str) -> bool:
    return stored.startswith(SCHEME + "$") and stored.count("$") == 3


def verify(secret: str, stored: str) -> bool:
    """True if `secret` is what `stored` (from hash_secret) was made from; False for any
    stored value that is not such a hash (an empty one included)."""
    if not is_hash(stored):
        return False
    _, iterations, salt, digest = stored.split("$")
    try:
        derived = _derive(secret, _unb64(salt), int(iterations))
        return hmac.compare_digest(derived, _unb64(digest))
    except (ValueError, TypeError):  # not base64, or not a number of iterations
        return False


class Verifier:
    """verify() with a memory of what it accepted; `run` runs the hash (a thread pool's
    apply under gevent, so one slow hash does not hold up the worker's other requests)."""

    MAX_REMEMBERED = 4096  # accepted credentials remembered; the memory starts over when full

    def __init__(self, run: Callable[..., bool] | None = None):
        self._run = run or (lambda f, args: f(*args))
        self._accepted: set[bytes] = set()

    def __call__(self, secret: str, stored: str) -> bool:
        key = hashlib.sha256(f"{stored}\0{secret}".encode()).digest()
        if key in self._accepted:
            return True
        if not self._run(verify, (secret, stored)):
            return False
        if len(self._accepted) >= self.MAX_REMEMBERED:
            self._accepted = set()
        self._accepted.add(key)
        return True
