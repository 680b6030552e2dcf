"""Several invocations of one service in one internal call (connector -> server).

    POST /zato/internal/invoke-many/{service}
    X-Zato-Epoch, X-Zato-CID, X-Zato-Signature   as for one invocation, signed over
                                                 batch_service(service) and the whole body
    X-Zato-Items-Content-Type: application/json or text/plain   (what each item is)
    body: the items as netstrings, b"<length>:<bytes>," one after another

The server checks the signature and the epoch once, runs every item as its own invocation
(its own CID, concurrently) and answers 200 with one result per item, in order:

    {"results": [[status, detail], ...]}   detail: "" on success, else the error's text

Any other answer is about the call as a whole (401, 409 stale epoch, 503...). A channel
connector sends what a broker delivered together, so a busy channel makes one HTTP call for
many messages; a lone message still goes alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from zato.common.errors import ZatoError

BATCH_PREFIX = "/zato/internal/invoke-many/"
ITEMS_TYPE_HEADER = "X-Zato-Items-Content-Type"
ITEMS_ENVIRON = "HTTP_" + ITEMS_TYPE_HEADER.upper().replace("-", "_")  # the header in a WSGI environ
MAX_ITEMS = 256  # per call, whatever the body size
_DIGITS = 10  # an item's length has at most this many digits


class BatchError(ZatoError):
    """The body is not a well-formed batch."""


def batch_service(service: str) -> str:
    """What a batch is signed as: never a service name (no name holds a newline), so a
    batch's signature cannot stand for one invocation of any service, nor the reverse."""
    return f"{service}\nbatch"


def encode_items(items: Sequence[bytes]) -> bytes:
    return b"".join(b"%d:%s," % (len(item), item) for item in items)


def decode_items(body: bytes) -> list[bytes]:
    items: list[bytes] = []
    at, size = 0, len(body)
    while at < size:
        colon = body.find(b":", at, at + _DIGITS + 1)
        digits = body[at:colon] if colon != -1 else b""
        if not (digits.isdigit() and digits.isascii()):
            raise BatchError(f"item {len(items) + 1}: no length at byte {at}")
        start = colon + 1
        end = start + int(digits)
        if end >= size or body[end : end + 1] != b",":
            raise BatchError(f"item {len(items) + 1}: its {int(digits)} bytes and ',' do not follow")
        items.append(body[start:end])
        if len(items) > MAX_ITEMS:
            raise BatchError(f"more than {MAX_ITEMS} items")
        at = end + 1
    if not items:
        raise BatchError("no items")
    return items


def encode_results(results: Sequence[tuple[int, str]]) -> bytes:
    return json.dumps({"results": [[status, detail] for status, detail in results]}).encode()


def decode_results(body: bytes, expected: int) -> list[tuple[int, str]]:
    """The per-item results; BatchError unless there is exactly one well-formed result per item."""
    try:
        rows = json.loads(body)["results"]
        results = [(int(status), str(detail)) for status, detail in rows]
    except (ValueError, KeyError, TypeError) as e:
        raise BatchError(f"malformed batch answer: {type(e).__name__}: {e}") from None
    if len(results) != expected:
        raise BatchError(f"{len(results)} results for {expected} items")
    return results
