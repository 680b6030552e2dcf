"""`self.crypto`, as in Zato: symmetric encryption of a service's data and hashing of secrets.

    token = self.crypto.encrypt(b"1234")        # URL-safe text; Fernet (AES-128-CBC, HMAC-SHA256)
    self.crypto.decrypt(token)                  # "1234" (text; bytes if it is not UTF-8)
    hashed = self.crypto.hash_secret("s3cret")  # "$pbkdf2-sha512$120000$<salt>$<hash>"
    self.crypto.verify_hash("s3cret", hashed)   # True
    self.crypto.generate_secret(), self.crypto.generate_password()

Every server of a cluster encrypts with the same key, derived from the cluster secret (one way:
the key does not reveal the secret, and it serves nothing else), so what one server encrypted
another decrypts. A hash has passlib's pbkdf2-sha512 form, as Zato writes it, so hashes Zato
made verify here. A hash takes about 0.06 s of CPU on purpose; in a worker it runs in gevent's
thread pool (as channel passwords are checked, zato.common.passwords.Verifier), so the worker's
other requests go on meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

_KEY_CONTEXT = b"zato-service-crypto/v1"
HASH_SCHEME = "pbkdf2-sha512"
HASH_ROUNDS = 120_000  # Zato's default
SALT_BYTES = 64


def service_key(cluster_secret: str) -> bytes:
    """The cluster's key for self.crypto (Fernet's form: 32 bytes, URL-safe base64)."""
    raw = hmac.new(cluster_secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw)


def _ab64(raw: bytes) -> str:
    """passlib's adapted base64: `.` for `+`, no padding."""
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("+", ".")


def _from_ab64(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _text(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _pbkdf2(data: bytes, salt: bytes, rounds: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", data, salt, rounds)


class CryptoAPI:
    def __init__(self, key: bytes, run: Callable[..., Any] | None = None):
        """run(func, args): where a hash runs (the worker's thread pool); default: here."""
        self.__key = key  # not an attribute a service lists (vars() shows it mangled, as any)
        self.__fernet: Any = None
        self._run = run or (lambda func, args: func(*args))

    def _fernet(self) -> Any:
        if self.__fernet is None:
            from cryptography.fernet import Fernet  # only for a worker whose services encrypt

            self.__fernet = Fernet(self.__key)
        return self.__fernet

    def encrypt(self, data: str | bytes, *args: Any, **kwargs: Any) -> str:
        """A token of `data` (text is taken as UTF-8): URL-safe, different each time."""
        return self._fernet().encrypt(_text(data)).decode("ascii")

    def decrypt(self, token: str | bytes, *args: Any, **kwargs: Any) -> str | bytes:
        """The data of a token encrypted by any server of this cluster: text, or bytes when it is
        not UTF-8. cryptography.fernet.InvalidToken for anything else (another cluster's, altered)."""
        data = self._fernet().decrypt(_text(token))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data

    def hash_secret(self, data: str | bytes, name: str = "zato.default", rounds: int = HASH_ROUNDS) -> str:
        """A salted PBKDF2-SHA512 hash of `data`, to store and check later with verify_hash."""
        salt = secrets.token_bytes(SALT_BYTES)
        digest = self._run(_pbkdf2, (_text(data), salt, rounds))
        return f"${HASH_SCHEME}${rounds}${_ab64(salt)}${_ab64(digest)}"

    def verify_hash(self, given: str | bytes, expected: str, name: str = "zato.default") -> bool:
        """Whether `given` is what `expected` (from hash_secret, here or in Zato) is a hash of.
        A malformed `expected` is False."""
        try:
            _, scheme, rounds, salt, digest = expected.split("$")
            if scheme != HASH_SCHEME or not rounds.isdigit() or not 0 < int(rounds) <= 10_000_000:
                return False
            salt_raw, digest_raw = _from_ab64(salt), _from_ab64(digest)
        except (ValueError, AttributeError):  # binascii.Error is a ValueError
            return False
        computed = self._run(_pbkdf2, (_text(given), salt_raw, int(rounds)))
        return hmac.compare_digest(computed, digest_raw)

    @staticmethod
    def generate_secret(bits: int = 256) -> str:
        """A random URL-safe text with `bits` of randomness."""
        return secrets.token_urlsafe(max(bits // 8, 1))

    @staticmethod
    def generate_password(bits: int = 192) -> str:
        """A random password (URL-safe characters) with `bits` of randomness."""
        return secrets.token_urlsafe(max(bits // 8, 1))
