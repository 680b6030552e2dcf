"""The credential of a connector -> server internal call.

The supervisor's connectors never send the cluster secret, nor hold it: the supervisor derives
the key of its epoch, `epoch_key(cluster_secret, epoch)`, and gives it to each connector it
starts (env ZATO_INVOKE_KEY); the connector signs every call with it: an HMAC-SHA256
over the epoch, the service name, the CID, the call's stamp and the body (header
`X-Zato-Signature`). A server derives the key for the epoch the call claims and compares, so a
captured call cannot be made to say another epoch, service, stamp or body: that needs the
cluster secret.

The stamp (header `X-Zato-Stamp`, `MILLISECONDS-NONCE`) is the time the call was sent, on
Redis's clock (zato.coord.redis_clock, so the hosts' own clocks need not agree), and a random
nonce made for that one sending. A server takes a call only within STAMP_WINDOW of its stamp,
and only once per nonce (zato.server.internal_gate): a captured call sent again, to the same server
or another, is refused (401), at once or hours later. Before, one call captured between hosts
(the internal calls travel over plain HTTP) could be replayed for as long as its epoch lasted.
A connector stamps each sending anew, so its own retry of a call on another server is a call of
its own, not a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SIGNATURE_HEADER = "X-Zato-Signature"
STAMP_HEADER = "X-Zato-Stamp"
# On a server's refusal of an internal call, before running anything: "credentials" on a 401
# (epoch, signature or stamp refused: a connector passes the call to the next server), "stale"
# on a 409 (a newer lease holder exists: the connector stops). A service's own 401 or 409 (Zato's
# Unauthorized, a Conflict) has no such header: the service ran, and its answer is the call's.
REFUSED_HEADER = "X-Zato-Call-Refused"
INVOKE_KEY_ENV = "ZATO_INVOKE_KEY"  # the epoch's key (hex), given by the supervisor to its connectors
# How far a call's stamp may be from the server's reading of Redis's clock: both read the same
# clock, so this covers the call's time on the wire and a body read slowly, not clock skew.
STAMP_WINDOW = 30.0
_CONTEXT = b"zato-internal-invoke/v2:"  # v2: the stamp is signed too (v1 calls are refused)
_STAMP = re.compile(r"([0-9]{1,15})-([0-9a-f]{32})")


def epoch_key(cluster_secret: str, epoch: int) -> bytes:
    """The key a connector of `epoch` signs its calls with."""
    return hmac.new(cluster_secret.encode(), _CONTEXT + str(epoch).encode(), hashlib.sha256).digest()


def new_stamp(now: float) -> str:
    """The stamp of one sending at `now` (epoch seconds, Redis's clock): a nonce of its own."""
    return f"{int(now * 1000)}-{secrets.token_hex(16)}"


def parse_stamp(stamp: str) -> tuple[float, str] | None:
    """(epoch seconds, nonce) of a stamp; None for one that is not of new_stamp's form."""
    match = _STAMP.fullmatch(stamp)
    if match is None:
        return None
    return int(match.group(1)) / 1000, match.group(2)


def sign(key: bytes, epoch: int, service: str, cid: str, stamp: str, body: bytes) -> str:
    """The hex signature of one call."""
    mac = hmac.new(key, f"{epoch}\n{service}\n{cid}\n{stamp}\n".encode(), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def verify(
    cluster_secret: str, signature: str, epoch: int, service: str, cid: str, stamp: str, body: bytes
) -> bool:
    """True when `signature` was made with the key of `epoch` over this call."""
    expected = sign(epoch_key(cluster_secret, epoch), epoch, service, cid, stamp, body)
    return hmac.compare_digest(signature.strip().lower().encode(), expected.encode())
