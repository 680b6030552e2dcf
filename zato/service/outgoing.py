"""`self.outgoing` for services: AMQP and IBM MQ (through Redis to the outgoing connectors) and
ZeroMQ (sockets in the server itself, as the seed says).

make_outgoing(settings, redis_client) is called once per gunicorn worker and returns an object
with `.amqp.send(data, name, exchange=None, routing_key=None, properties=None)`,
`.ibm_mq.send(data, name, queue=None, priority=None, expiry=None, persistence=None,
correlation_id=None, reply_to=None)` and `.zmq.send(data, name)`. Definitions are read from
the ODB and re-checked every few seconds, so edits apply without a restart.

ZeroMQ addresses: "@tcp://..." binds, ">tcp://..." connects; an outgoing connection connects
by default. Sockets are created lazily, one per connection per worker.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis

from zato.common.errors import ConnectorError
from zato.config.settings import ServerSettings
from zato.connector import ibmmq_outgoing
from zato.connector.zmq_channel import endpoint
from zato.coord.queues import OutQueue, encode
from zato.odb import connectors
from zato.odb.engine import ODB

logger = logging.getLogger("zato.outgoing")

RECHECK = 2.0  # seconds a definition read from the ODB is trusted
ZMQ_SEND_TIMEOUT_MS = 5000


class _Definitions:
    """Definitions of one kind, read from the ODB on demand and cached for RECHECK seconds."""

    def __init__(self, settings: ServerSettings, kind: str):
        self.settings, self.kind = settings, kind
        self._odb: ODB | None = None
        self._cache: dict[str, tuple[float, dict | None]] = {}

    def get(self, name: str) -> dict:
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is None or now - hit[0] > RECHECK:
            if self._odb is None:
                self._odb = ODB(self.settings.odb_url)
            try:
                found: dict | None = connectors.load(self._odb, self.settings.cluster, self.kind, name)
            except ConnectorError:
                found = None
            hit = (now, found)
            self._cache[name] = hit
        if hit[1] is None or not hit[1]["is_active"]:
            raise ConnectorError(f"no active {self.kind} connection named {name!r}")
        return hit[1]


class AMQPOutgoing:
    def __init__(self, settings: ServerSettings, client: redis.Redis):
        self.settings, self.client = settings, client
        self.defs = _Definitions(settings, "amqp-outgoing")

    def send(
        self,
        data: object,
        name: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        properties: dict | None = None,
    ) -> None:
        """Hand `data` to the outgoing connector `name` durably (Redis); it publishes it with
        publisher confirms, also if it is restarting or moving to another server right now."""
        self.defs.get(name)
        raw = encode(data, exchange, routing_key, properties)
        OutQueue(self.client, self.settings.cluster, "amqp", name).push(raw)


class IBMMQOutgoing:
    def __init__(self, settings: ServerSettings, client: redis.Redis):
        self.settings, self.client = settings, client
        self.defs = _Definitions(settings, "ibm-mq-outgoing")

    def send(
        self,
        data: object,
        name: str,
        queue: str | None = None,
        priority: int | None = None,
        expiry: int | None = None,
        persistence: str | None = None,
        correlation_id: str | bytes | None = None,
        reply_to: str | None = None,
    ) -> None:
        """Hand `data` to the IBM MQ outgoing connector `name` durably (Redis); it puts it to
        `queue` (default: the connection's) under syncpoint, also across restarts and takeovers.
        Works without the IBM MQ client installed on this server; expiry is in seconds."""
        self.defs.get(name)
        raw = ibmmq_outgoing.encode(data, queue, priority, expiry, persistence, correlation_id, reply_to)
        OutQueue(self.client, self.settings.cluster, ibmmq_outgoing.KIND, name).push(raw)


def _zmq_module():  # noqa: ANN202
    """zmq.green under gevent (server workers), plain zmq elsewhere."""
    try:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            import zmq.green

            return zmq.green
    except ImportError:
        pass
    import zmq

    return zmq


def to_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    try:
        return json.dumps(data).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ConnectorError(f"cannot send {type(data).__name__}: {e}") from None


class ZMQOutgoing:
    def __init__(self, settings: ServerSettings):
        self.defs = _Definitions(settings, "zmq-outgoing")
        self._sockets: dict[str, tuple[tuple, object]] = {}
        self._lock = threading.Lock()
        self._zmq = None
        self._ctx = None

    def send(self, data: object, name: str) -> None:
        body = to_bytes(data)
        d = self.defs.get(name)
        sock = self._socket(name, d)
        try:
            sock.send(body)
        except self._zmq.Again:
            raise ConnectorError(
                f"ZeroMQ outgoing {name!r}: no peer took the message within {ZMQ_SEND_TIMEOUT_MS} ms"
            ) from None
        except self._zmq.ZMQError as e:
            raise ConnectorError(f"ZeroMQ outgoing {name!r}: {e}") from None

    def _socket(self, name: str, d: dict):  # noqa: ANN202
        shape = (d["address"], d["socket_type"])
        with self._lock:
            known = self._sockets.get(name)
            if known is not None and known[0] == shape:
                return known[1]
            if known is not None:
                known[1].close(linger=1000)
            if self._ctx is None:
                self._zmq = _zmq_module()
                self._ctx = self._zmq.Context()
            sock = self._ctx.socket(self._zmq.PUSH if d["socket_type"] == "PUSH" else self._zmq.PUB)
            sock.setsockopt(self._zmq.SNDTIMEO, ZMQ_SEND_TIMEOUT_MS)
            sock.setsockopt(self._zmq.LINGER, 2000)
            address, bind = endpoint(d["address"], bind_by_default=False)
            try:
                sock.bind(address) if bind else sock.connect(address)
            except self._zmq.ZMQError as e:
                sock.close(linger=0)
                raise ConnectorError(f"ZeroMQ outgoing {name!r}: cannot use {address}: {e}") from None
            self._sockets[name] = (shape, sock)
            return sock

    def close(self) -> None:
        with self._lock:
            for _, sock in self._sockets.values():
                sock.close(linger=1000)
            self._sockets.clear()


class Outgoing:
    def __init__(self, settings: ServerSettings, client: redis.Redis):
        self.amqp = AMQPOutgoing(settings, client)
        self.ibm_mq = IBMMQOutgoing(settings, client)
        self.zmq = ZMQOutgoing(settings)


def make_outgoing(settings: ServerSettings, redis_client: redis.Redis) -> Outgoing:
    return Outgoing(settings, redis_client)
