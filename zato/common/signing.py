"""The credential of a connector -> server internal call.

The supervisor's connectors never send the cluster secret, nor hold it: the supervisor derives
the key of its epoch, `epoch_key(cluster_secret, epoch)`, and gives it to each connector it
starts (env ZATO_INVOKE_KEY); the connector signs every call with it: an HMAC-SHA256
over the epoch, the service name, the CID and the body (header `X-Zato-Signature`). A server
derives the key for the epoch the call claims and compares, so a captured call cannot be
replayed with a newer epoch (nor another service or body): that needs the cluster secret.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Zato-Signature"
INVOKE_KEY_ENV = "ZATO_INVOKE_KEY"  # the epoch's key (hex), given by the supervisor to its connectors
_CONTEXT = b"zato-internal-invoke/v1:"


def epoch_key(cluster_secret: str, epoch: int) -> bytes:
    """The key a connector of `epoch` signs its calls with."""
    return hmac.new(cluster_secret.encode(), _CONTEXT + str(epoch).encode(), hashlib.sha256).digest()


def sign(key: bytes, epoch: int, service: str, cid: str, body: bytes) -> str:
    """The hex signature of one call."""
    mac = hmac.new(key, f"{epoch}\n{service}\n{cid}\n".encode(), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def verify(cluster_secret: str, signature: str, epoch: int, service: str, cid: str, body: bytes) -> bool:
    """True when `signature` was made with the key of `epoch` over this call."""
    expected = sign(epoch_key(cluster_secret, epoch), epoch, service, cid, body)
    return hmac.compare_digest(signature.strip().lower().encode(), expected.encode())
