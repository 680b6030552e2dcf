"""Signed entries: proof that a Redis entry was written by a holder of the cluster secret.

The signing key is derived from the cluster secret and the cluster name (HMAC-SHA256 with a
fixed label), so the secret itself is never used as a key for anything else, and an entry of
one cluster never verifies in another cluster that shares the same secret. An entry is a JSON
object; its signature is the HMAC of the object's other fields in canonical JSON (sorted keys,
no spaces), stored in the field "sig". Fields a newer version adds are signed too.
"""

from __future__ import annotations

import hashlib
import hmac
import json

SIG = "sig"
_LABEL = b"zato-ha member entry v1\x00"


def member_key(cluster_secret: str, cluster: str) -> bytes:
    """The key that signs membership entries of `cluster`."""
    if not cluster_secret:
        raise ValueError("a cluster secret is required to sign or verify member entries")
    return hmac.new(cluster_secret.encode(), _LABEL + cluster.encode(), hashlib.sha256).digest()


def _mac(key: bytes, doc: dict) -> str:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, doc: dict) -> str:
    """`doc` as JSON text with its signature added."""
    unsigned = {k: v for k, v in doc.items() if k != SIG}
    return json.dumps({**unsigned, SIG: _mac(key, unsigned)})


def verified(key: bytes, doc: dict) -> dict | None:
    """The fields of `doc` without its signature if the signature checks, else None."""
    sig = doc.get(SIG)
    if not isinstance(sig, str):
        return None
    unsigned = {k: v for k, v in doc.items() if k != SIG}
    return unsigned if hmac.compare_digest(sig, _mac(key, unsigned)) else None
