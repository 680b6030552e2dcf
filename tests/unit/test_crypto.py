"""self.crypto: Fernet with the cluster's derived key, and hashes in passlib's pbkdf2-sha512 form
(logic only; tests/integration/test_zato_services.py uses it across two real servers)."""

from __future__ import annotations

import pytest
from cryptography.fernet import InvalidToken

from zato.service.crypto import CryptoAPI, service_key

CRYPTO = CryptoAPI(service_key("a-cluster-secret-of-enough-length"))

# Made by passlib 1.7.4's pbkdf2_sha512 (what Zato writes), as .hash(password) and with a set salt.
PASSLIB = [
    ("s3cret", "$pbkdf2-sha512$25000$2vufM8Z4730PoRSilLIWgg$leHR2p.9Pb66DQ6MyPanPWKyVzqV2v2lySUfdiFaCs0H1"
     "ceRMaPUwcect39dDxEsVV6Q9J8.pATXoaZcVpbvvQ"),
    ("C61mBoPzpa2sA", "$pbkdf2-sha512$1000$MDEyMzQ1Njc4OWFiY2RlZg$w007OVVvcsWjzAAZDkf3E/jP84q4WBCC45vsW9d4g6x"
     "uF1.ClKcnseSwhd8gO7KHmBiEdDLU9VVR8iG7vwvBIg"),
]  # fmt: skip


@pytest.mark.parametrize(("password", "hashed"), PASSLIB)
def test_hashes_zato_made_verify_here(password: str, hashed: str) -> None:
    assert CRYPTO.verify_hash(password, hashed)
    assert not CRYPTO.verify_hash(password + "x", hashed)


def test_a_hash_made_here_verifies_and_differs_each_time() -> None:
    first, second = CRYPTO.hash_secret("zażółć"), CRYPTO.hash_secret("zażółć")
    assert first.startswith("$pbkdf2-sha512$120000$") and first != second
    assert CRYPTO.verify_hash("zażółć", first) and CRYPTO.verify_hash("zażółć".encode(), second)
    assert not CRYPTO.verify_hash("zazolc", first)


@pytest.mark.parametrize(
    "expected",
    [
        "",
        "plain",
        "$pbkdf2-sha512$x$a$b",
        "$md5$1$a$b",
        "$pbkdf2-sha512$1$!!!$abc",
        None,
        "$pbkdf2-sha512$0$aa$bb",
    ],
)
def test_a_malformed_hash_is_false_not_an_error(expected) -> None:  # noqa: ANN001
    assert CRYPTO.verify_hash("s3cret", expected) is False


def test_encrypt_decrypt_within_a_cluster_only() -> None:
    token = CRYPTO.encrypt(b"1234567890")
    assert token.startswith("gAAAAA") and token != CRYPTO.encrypt(b"1234567890")
    assert CRYPTO.decrypt(token) == "1234567890"
    assert CRYPTO.decrypt(CRYPTO.encrypt("zażółć")) == "zażółć"
    assert CRYPTO.decrypt(CRYPTO.encrypt(b"\xff\x00")) == b"\xff\x00"  # not UTF-8: bytes
    same_cluster = CryptoAPI(service_key("a-cluster-secret-of-enough-length"))
    assert same_cluster.decrypt(token) == "1234567890"  # another server of the cluster
    with pytest.raises(InvalidToken):
        CryptoAPI(service_key("another-clusters-secret-xxxxxxxxxx")).decrypt(token)
    with pytest.raises(InvalidToken):
        CRYPTO.decrypt(token[:-4] + "AAAA")


def test_the_key_is_derived_one_way_and_secrets_are_random() -> None:
    key = service_key("a-cluster-secret-of-enough-length")
    assert b"a-cluster-secret" not in key and key != service_key("a-cluster-secret-of-enough-lengtH")
    assert len(CRYPTO.generate_secret()) >= 40 and CRYPTO.generate_password() != CRYPTO.generate_password()
