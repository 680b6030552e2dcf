"""Durable hand-off of outgoing messages from server workers to outgoing connectors (flow 6).

    worker:     LPUSH out_queue                                   (push)
    connector:  BLMOVE out_queue -> out_processing (RIGHT, LEFT)  (take, take_many)
                publish to the broker, wait for the confirm
                LREM out_processing                               (done)
    on start:   whatever is left in out_processing is published again (leftovers): nothing is
                lost when a connector dies between taking and confirming (at-least-once).

Only one copy of a connector runs in the cluster (the lease), so its processing list is its own.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field

import redis

from zato.common.errors import ConnectorError
from zato.coord.client import translate
from zato.coord.keys import Keys

# Properties a service may set on an outgoing AMQP message (pika.BasicProperties names).
AMQP_PROPERTIES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)


@dataclass(frozen=True)
class OutMessage:
    body: bytes
    exchange: str | None = None  # None: the connection's default
    routing_key: str | None = None
    properties: dict = field(default_factory=dict)
    id: str = ""


def encode(
    data: object, exchange: str | None = None, routing_key: str | None = None, properties: dict | None = None
) -> str:
    """One message as the JSON text stored in Redis. `data` may be bytes, str or anything
    JSON can serialise (sent as JSON text). Raises ConnectorError for anything else."""
    props = dict(properties or {})
    unknown = sorted(set(props) - set(AMQP_PROPERTIES))
    if unknown:
        raise ConnectorError(f"unknown AMQP message properties: {', '.join(unknown)}")
    msg = envelope(data, exchange=exchange, routing_key=routing_key, properties=props)
    try:
        return json.dumps(msg)
    except (TypeError, ValueError) as e:
        raise ConnectorError(f"AMQP message properties are not JSON-serialisable: {e}") from None


def envelope(data: object, **fields: object) -> dict:
    """A message as stored in Redis: a fresh id, a timestamp, `fields`, and the body (bytes as
    base64, str as text, anything else as JSON text). ConnectorError for what JSON cannot take."""
    msg: dict = {"id": uuid.uuid4().hex, "ts": time.time(), **fields}
    if isinstance(data, bytes):
        msg["b64"] = base64.b64encode(data).decode("ascii")
    elif isinstance(data, str):
        msg["text"] = data
    else:
        try:
            msg["text"] = json.dumps(data)
        except (TypeError, ValueError) as e:
            raise ConnectorError(f"cannot send {type(data).__name__}: {e}") from None
    return msg


def body_of(msg: dict) -> bytes:
    """The body of a stored message (see envelope); KeyError/ValueError/TypeError if malformed."""
    if "b64" in msg:
        return base64.b64decode(msg["b64"])
    return msg["text"].encode("utf-8")


def decode(raw: str) -> OutMessage:
    """The message stored as `raw`; ConnectorError if it is not one of ours."""
    try:
        msg = json.loads(raw)
        body = body_of(msg)
        props = msg.get("properties") or {}
        if not isinstance(props, dict):
            raise TypeError("properties is not an object")
        return OutMessage(body, msg.get("exchange"), msg.get("routing_key"), props, msg.get("id", ""))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConnectorError(f"malformed outgoing message ({type(e).__name__}: {e})") from None


class OutQueue:
    """The Redis lists of one outgoing connection."""

    def __init__(self, client: redis.Redis, cluster: str, kind: str, name: str):
        keys = Keys(cluster)
        self.client = client
        self.what = f"outgoing {kind} {name!r}"
        self.queue = keys.out_queue(kind, name)
        self.processing = keys.out_processing(kind, name)
        self.parked = keys.out_parked(kind, name)

    def push(self, raw: str) -> None:
        with translate(f"queueing a message for {self.what}"):
            self.client.lpush(self.queue, raw)

    def take(self, timeout: float) -> str | None:
        """The oldest waiting message, moved to the processing list; None after `timeout`."""
        with translate(f"taking a message for {self.what}"):
            return self.client.blmove(self.queue, self.processing, timeout, "RIGHT", "LEFT")

    def take_many(self, limit: int) -> list[str]:
        """Up to `limit` more waiting messages without blocking (oldest first)."""
        out: list[str] = []
        with translate(f"taking messages for {self.what}"):
            # One LMOVE per waiting message (not `limit` of them into an empty list), all in
            # one round trip.
            waiting = min(limit, int(self.client.llen(self.queue))) if limit > 0 else 0
            if waiting:
                pipe = self.client.pipeline(transaction=False)
                for _ in range(waiting):
                    pipe.lmove(self.queue, self.processing, "RIGHT", "LEFT")
                out = [raw for raw in pipe.execute() if raw is not None]
        return out

    def done(self, raws: list[str]) -> None:
        """The broker confirmed these: remove them from the processing list."""
        if not raws:
            return
        with translate(f"acknowledging messages of {self.what}"):
            pipe = self.client.pipeline(transaction=False)
            for raw in raws:
                pipe.lrem(self.processing, -1, raw)
            pipe.execute()

    def leftovers(self) -> list[str]:
        """Messages taken by an earlier run but not confirmed, oldest first."""
        with translate(f"reading unconfirmed messages of {self.what}"):
            return list(reversed(self.client.lrange(self.processing, 0, -1)))

    def park(self, raw: str) -> None:
        with translate(f"parking a message of {self.what}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(self.parked, raw)
            pipe.lrem(self.processing, -1, raw)
            pipe.execute()

    def depth(self) -> tuple[int, int]:
        """(waiting, in processing)."""
        with translate(f"reading the queue depth of {self.what}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.llen(self.queue)
            pipe.llen(self.processing)
            waiting, processing = pipe.execute()
        return int(waiting), int(processing)

    def parked_count(self) -> int:
        with translate(f"counting parked messages of {self.what}"):
            return int(self.client.llen(self.parked))

    def resend_parked(self, limit: int = 10000) -> int:
        """Move parked messages back to the queue (oldest first); returns how many moved."""
        moved = 0
        with translate(f"re-sending parked messages of {self.what}"):
            while moved < limit and self.client.lmove(self.parked, self.queue, "RIGHT", "LEFT") is not None:
                moved += 1
        return moved
