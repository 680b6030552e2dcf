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

Messages with what the broker said of them (AMQP's properties and delivery, IBM MQ's MQMD):

    POST /zato/internal/invoke-messages/{service}   signed over messages_service(service)
    body: per message two items, its metadata (JSON, zato.service.messages) then its body

and a result may carry a third field, what the service asked of its message
(self.request.amqp.ack() / reject()): [status, detail, "ack" | "reject" | "requeue"].
A server that does not know this endpoint answers 404 and the connector sends the bodies
alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from zato.common.errors import ZatoError

BATCH_PREFIX = "/zato/internal/invoke-many/"
MESSAGES_PREFIX = "/zato/internal/invoke-messages/"
SETTLES = ("ack", "reject", "requeue")  # what a service may ask of its message
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


def messages_service(service: str) -> str:
    """What a call of messages with their metadata is signed as (never a batch's nor a
    service name)."""
    return f"{service}\nmessages"


def encode_messages(messages: Sequence[tuple[bytes, bytes]]) -> bytes:
    """(metadata, body) pairs: two items each."""
    return encode_items([item for pair in messages for item in pair])


def decode_messages(body: bytes) -> list[tuple[bytes, bytes]]:
    items = decode_items(body)
    if len(items) % 2:
        raise BatchError(f"{len(items)} items: not metadata and body for each message")
    return list(zip(items[::2], items[1::2], strict=True))


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


_OK = (200, "", "")
_OK_ROW = b'[200, ""]'


def _all_ok(n: int) -> bytes:
    """The answer of n items that all succeeded, as json.dumps writes it (the common case,
    made without encoding each row)."""
    return b'{"results": [' + b", ".join([_OK_ROW] * n) + b"]}"


def encode_results(results: Sequence[tuple[int, str, str]]) -> bytes:
    """(status, detail, settle) per item; settle "" (the service asked nothing) is left out."""
    if all(result == _OK for result in results):
        return _all_ok(len(results))
    rows = [[status, detail, settle] if settle else [status, detail] for status, detail, settle in results]
    return json.dumps({"results": rows}).encode()


def decode_results(body: bytes, expected: int) -> list[tuple[int, str, str]]:
    """The per-item results, each (status, detail, settle); BatchError unless there is
    exactly one well-formed result per item."""
    if body == _all_ok(expected):
        return [_OK] * expected
    try:
        rows = json.loads(body)["results"]
        results = [(int(row[0]), str(row[1]), _settle(row[2:])) for row in rows]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise BatchError(f"malformed batch answer: {type(e).__name__}: {e}") from None
    if len(results) != expected:
        raise BatchError(f"{len(results)} results for {expected} items")
    return results


def _settle(rest: list) -> str:
    if not rest:
        return ""
    if len(rest) > 1 or rest[0] not in SETTLES:
        raise ValueError(f"unknown settle {rest!r}")
    return rest[0]
