"""`self.outgoing` (also `self.out`) for services: AMQP and IBM MQ (through Redis to the
outgoing connectors), ZeroMQ (sockets in the server itself, as the seed says), plain HTTP
(zato/service/out_http.py) and SQL (zato/service/out_sql.py).

make_outgoing(settings, redis_client) is called once per gunicorn worker and returns an object
with `.amqp.send(msg, out_name, exchange=None, routing_key=None, properties=None, headers=None,
priority=None, expiration=None)` (Zato's argument names), `.ibm_mq.send(msg, outconn_name,
queue_name=None, correlation_id='', msg_id='', reply_to='', expiration=None, priority=None,
delivery_mode=None, raise_on_error=True)` (Zato's; our data=, name=, queue=, expiry=,
persistence= too),
`.zmq.send(data, name)`, `.plain_http[name].conn.get(cid, ...)` and `.sql.get(name).session()`.
Definitions are read from the ODB and re-checked every few seconds, so edits apply without a
restart. Nothing here keeps the settings object: a service reaching through it finds no
password nor ODB URL.

ZeroMQ addresses: "@tcp://..." binds, ">tcp://..." connects; an outgoing connection connects
by default. Sockets are created lazily, one per connection per worker.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from zato.common import jsonenc
from zato.common.errors import ConnectorError, CoordUnavailable, OutgoingNotFound
from zato.config.settings import ServerSettings
from zato.connector import ibmmq_outgoing
from zato.connector.zmq_address import endpoint
from zato.coord.queues import AMQP, OutQueue, encode
from zato.coord.signing import outgoing_key
from zato.odb import connectors
from zato.odb.cached import Cached
from zato.odb.engine import ODB
from zato.service.unsupported import OUTGOING as UNSUPPORTED_KINDS
from zato.service.unsupported import refuse_on

logger = logging.getLogger("zato.outgoing")

ZMQ_SEND_TIMEOUT_MS = 5000


Loader = Callable[[str, str], "dict | None"]  # (kind, name) -> the full definition or None


def odb_loader(settings: ServerSettings) -> Loader:
    """Reads definitions from the ODB; the ODB URL stays in this closure, not on an attribute."""
    url, cluster = settings.odb_url, settings.cluster
    odb: list[ODB] = []

    def load(kind: str, name: str) -> dict | None:
        if not odb:
            odb.append(ODB(url))
        try:
            return connectors.load(odb[0], cluster, kind, name)
        except ConnectorError:
            return None

    return load


class _Definitions:
    """Definitions of one kind, read from the ODB on demand, kept for a few seconds, and kept
    on while the ODB cannot be read (zato.odb.cached)."""

    def __init__(self, load: Loader, kind: str):
        self.kind = kind
        self._cached = Cached(functools.partial(load, kind), f"{kind} connection")

    def get(self, name: str) -> dict:
        d = self._cached.get(name)
        if d is None or not d["is_active"]:
            raise OutgoingNotFound(f"no active {self.kind} connection named {name!r}", self.kind, name)
        return d

    def forget(self, name: str) -> None:
        self._cached.forget(name)


class PerWorker:
    """Connections of one kind kept per worker, made again when their definition changes;
    an unknown or inactive name is OutgoingNotFound (also a LookupError, as Zato's KeyError)."""

    def __init__(self, defs: _Definitions):
        self.defs = defs
        self._conns: dict[str, tuple[tuple, object]] = {}

    def make(self, name: str, definition: dict) -> object:
        raise NotImplementedError

    def close(self, conn: object) -> None:
        """Release what `make` built for a definition that changed."""

    def get(self, name: str) -> Any:
        d = self.defs.get(name)
        shape = tuple(sorted((k, str(v)) for k, v in d.items()))
        known = self._conns.get(name)
        if known is not None and known[0] == shape:
            return known[1]
        if known is not None:
            self.close(known[1])
        made = self.make(name, d)
        self._conns[name] = (shape, made)
        return made

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except LookupError:
            return False
        return True


# Zato's send() keywords that are AMQP message properties.
AMQP_KEYWORDS = (
    "headers",
    "priority",
    "expiration",
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "message_id",
    "delivery_mode",
)


TEXT_LABEL = "text/plain; charset=utf-8"
BINARY_LABEL = "application/octet-stream"


def text_label(msg: object, default: str) -> str | None:
    """The content type of a text or bytes `msg` that is not JSON, sent through a connection
    whose messages are labelled JSON (its content_type, application/json by default) and with
    no content_type of its own: text/plain (UTF-8 text) or application/octet-stream. None: the
    connection's label holds (a dict or list, which goes as JSON; JSON text; another label).
    Zato's own example sends `'Hello AMQP broker!'`: labelled application/json, a consumer that
    decodes by the label (kombu, a channel's `self.request.amqp.msg.payload`) failed on it."""
    if not isinstance(msg, (str, bytes)) or default.split(";")[0].strip().lower() != "application/json":
        return None
    try:
        json.loads(msg, parse_constant=_not_json)  # NaN, Infinity: Python's, not JSON
    except UnicodeDecodeError:
        return BINARY_LABEL
    except ValueError:
        return TEXT_LABEL if isinstance(msg, str) or _utf8(msg) else BINARY_LABEL
    return None


def _not_json(word: str) -> None:
    raise ValueError(f"{word} is not JSON")


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class AMQPOutgoing:
    def __init__(self, load: Loader, cluster: str, client: redis.Redis, key: bytes):
        """key: signs each message (zato.coord.signing.outgoing_key): its connector publishes
        no other."""
        self.cluster, self.client = cluster, client
        self.defs = _Definitions(load, "amqp-outgoing")
        self._encode = functools.partial(encode, key=key)

    def send(
        self,
        msg: object,
        out_name: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        properties: dict | None = None,
        headers: dict | None = None,
        priority: int | None = None,
        expiration: int | str | None = None,
        **kwargs: object,
    ) -> None:
        """Hand `msg` to the outgoing connection `out_name` durably (Redis); its connector
        publishes it with publisher confirms, also while it restarts or moves to another server.
        headers, priority, expiration (ms) and the other keywords are AMQP message properties."""
        d = self.defs.get(out_name)
        props = dict(properties or {})
        extra = {"headers": headers, "priority": priority, "expiration": expiration, **kwargs}
        for key, value in extra.items():
            if key not in AMQP_KEYWORDS:
                raise ConnectorError(f"amqp.send: unknown argument {key!r}")
            if value is not None:
                props[key] = str(value) if key == "expiration" else value
        if props.get("content_type") is None:
            label = text_label(msg, d.get("content_type") or "")
            if label:
                props["content_type"] = label
        raw = self._encode(msg, exchange, routing_key, props)
        OutQueue(self.client, self.cluster, AMQP, out_name).push(raw)


class IBMMQOutgoing:
    """`self.outgoing.ibm_mq` / `self.out.ibm_mq`. send() takes Zato's own signature,
    send(msg, outconn_name, queue_name, correlation_id='', msg_id='', reply_to='',
    expiration=None, priority=None, delivery_mode=None, raise_on_error=True), and our keyword
    names (data=, name=, queue=, expiry= in seconds, persistence=) as well."""

    def __init__(self, load: Loader, cluster: str, client: redis.Redis, key: bytes):
        """key: signs each message (zato.coord.signing.outgoing_key): its connector puts no
        other."""
        self.cluster, self.client = cluster, client
        self.defs = _Definitions(load, "ibm-mq-outgoing")
        self._encode = functools.partial(ibmmq_outgoing.encode, key=key)

    def send(
        self,
        msg: object = None,
        outconn_name: str | None = None,
        queue_name: str | None = None,
        correlation_id: str | bytes | None = None,
        msg_id: str | bytes | None = None,
        reply_to: str | None = None,
        expiration: int | None = None,
        priority: int | None = None,
        delivery_mode: int | None = None,
        raise_on_error: bool = True,
        *,
        data: object = None,
        name: str | None = None,
        queue: str | None = None,
        expiry: float | None = None,
        persistence: str | None = None,
    ) -> None:
        """Hand the message to the IBM MQ outgoing connector `outconn_name` durably (Redis); it
        puts it to `queue_name` (default: the connection's) under syncpoint, also across restarts
        and takeovers. Works without the IBM MQ client installed on this server. expiration is
        Zato's (JMS milliseconds), expiry ours (seconds); delivery_mode is Zato's (1
        non-persistent, 2 persistent), persistence ours. raise_on_error=False: a message that
        cannot be handed to Redis is logged and dropped, as Zato does when its connector is
        down; bad arguments raise either way."""
        body = _one("msg", msg, "data", data)
        out = _one("outconn_name", outconn_name, "name", name)
        if out is None:
            raise ConnectorError("ibm_mq.send: the outgoing connection's name is required (outconn_name)")
        self.defs.get(out)
        raw = self._encode(
            body,
            _one("queue_name", queue_name, "queue", queue) or None,
            priority,
            _one("expiration", ibmmq_outgoing.expiry_of_expiration(expiration), "expiry", expiry),
            _one(
                "delivery_mode",
                ibmmq_outgoing.persistence_of_delivery_mode(delivery_mode),
                "persistence",
                persistence,
            ),
            correlation_id,
            reply_to,
            msg_id,
        )
        try:
            OutQueue(self.client, self.cluster, ibmmq_outgoing.KIND, out).push(raw)
        except CoordUnavailable as e:
            if raise_on_error:
                raise
            logger.warning("IBM MQ outgoing %r: message dropped (raise_on_error=False): %s", out, e)


def _one(zato_name: str, zato_value: Any, our_name: str, our_value: Any) -> Any:
    """The value of an argument that has Zato's name and ours; refuses both at once."""
    if zato_value is not None and our_value is not None:
        raise ConnectorError(f"ibm_mq.send: give {zato_name} or {our_name}, not both")
    return our_value if zato_value is None else zato_value


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
        return jsonenc.dumps(data).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ConnectorError(f"cannot send {type(data).__name__}: {e}") from None


class ZMQOutgoing:
    def __init__(self, load: Loader):
        self.defs = _Definitions(load, "zmq-outgoing")
        self._sockets: dict[str, tuple[tuple, Any]] = {}  # name -> (address and type, zmq socket)
        self._lock = threading.Lock()
        self._zmq: Any = None  # zmq, or zmq.green under gevent: chosen on first use (_zmq_module)
        self._ctx: Any = None  # a Context of that module

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

    def _socket(self, name: str, d: dict) -> Any:
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
        from zato.service.out_http import PlainHTTP
        from zato.service.out_sql import SQL

        load = odb_loader(settings)
        key = outgoing_key(settings.cluster_secret, settings.cluster)  # the key, not the secret, is kept
        self.amqp = AMQPOutgoing(load, settings.cluster, client, key)
        self.ibm_mq = IBMMQOutgoing(load, settings.cluster, client, key)
        self.wmq = self.jms_wmq = self.ibm_mq  # Zato's other names for it
        self.zmq = ZMQOutgoing(load)
        self.plain_http = self.rest = PlainHTTP(  # `rest`: Zato 3.2+
            _Definitions(load, "http-outgoing"), settings.limits.max_outgoing_body
        )
        self.sql = SQL(_Definitions(load, "sql-outgoing"))
        kinds = (self.amqp, self.ibm_mq, self.zmq, self.plain_http, self.sql)
        self._by_kind = {o.defs.kind: o.defs for o in kinds}

    def forget(self, kind: str, name: str) -> None:
        """A config event said that connection `name` of `kind` changed: read it on its next use."""
        defs = self._by_kind.get(kind)
        if defs is not None:
            defs.forget(name)


refuse_on(Outgoing, "self.out", UNSUPPORTED_KINDS)  # self.out.sftp and the like: NotSupported


def make_outgoing(settings: ServerSettings, redis_client: redis.Redis) -> Outgoing:
    return Outgoing(settings, redis_client)
