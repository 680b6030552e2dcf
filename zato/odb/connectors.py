"""CRUD for connection definitions: AMQP and IBM MQ (definition, channel, outgoing) and ZeroMQ
(channel, outgoing). Used by the CLI, the admin API, the connector processes and the registry.

Values come as strings (CLI) or JSON scalars (admin API); each is validated against a field
table and every bad value raises ConnectorError naming the kind, the field and what is wrong.
Public views never carry a password (it shows as "******").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zato.common.errors import ConnectorError
from zato.common.log import redact
from zato.common.passwords import hash_secret
from zato.connector import zmq_address
from zato.coord import parse
from zato.odb.engine import ODB
from zato.odb.limits import (
    AMQP_HANDSHAKE_TIMEOUT,
    CHANNEL_TIMEOUT,
    MAX_AMQP_HANDSHAKE_TIMEOUT,
    MAX_AMQP_HEARTBEAT,
    MAX_CHANNEL_TIMEOUT,
    MAX_IN_FLIGHT,
    ZMQ_IN_FLIGHT,
)
from zato.odb.models import (
    AMQPChannel,
    AMQPDefinition,
    AMQPOutgoing,
    Cluster,
    HTTPChannel,
    HTTPOutgoing,
    HTTPSecurity,
    IBMMQChannel,
    IBMMQDefinition,
    IBMMQOutgoing,
    Server,
    SQLOutgoing,
    ZMQChannel,
    ZMQOutgoing,
)

MASK = "******"
URL_TYPES = ("http-url", "sql-url")  # fields whose value may have held a password: shown redacted
AMQP_QUEUE_MAX = 255 - len(".zato-parked")  # 243: the channel's parking queue is QUEUE.zato-parked


class DefinitionNotFound(ConnectorError):
    """No definition of that kind and name in the cluster."""


DATA_FORMATS = ("json", "text")
SECURITY_TYPES = ("basic_auth", "apikey")
MQ_PERSISTENCE = ("persistent", "non-persistent", "queue")
MQ_CONN_NAME_MAX = 264  # bytes: MQCD ConnectionName (MQ_CONN_NAME_LENGTH)


@dataclass(frozen=True)
class Field:
    name: str
    # str | int | bool | choice | def | host | conn_name | mq-name | mq-channel | mq-qmgr | http-url
    # | sql-url | zmq-bind | zmq-connect
    type: str = "str"
    required: bool = False
    choices: tuple[str, ...] = ()
    lo: int = 0
    hi: int = 2**31 - 1
    secret: bool = False
    hashed: bool = False  # kept as zato.common.passwords.hash_secret(value), never as given
    max_len: int = 400  # characters (a string); `why`: what the bound is, for the error
    why: str = ""
    # what a row stored before the field's column existed (NULL) goes by, and its view shows
    unset: Any = None


_NAME = Field("name", required=True)
_DEF = Field("def", "def", required=True)  # a connection definition, by name (stored as def_id)
_ACTIVE = Field("is_active", "bool")
_MAX_IN_FLIGHT = Field("max_in_flight", "int", lo=0, hi=MAX_IN_FLIGHT)
# A channel's seconds to wait for its service's answer; a slower one is a failed delivery.
_TIMEOUT = Field("timeout", "int", lo=1, hi=MAX_CHANNEL_TIMEOUT, unset=CHANNEL_TIMEOUT)


FIELDS: dict[str, tuple[Field, ...]] = {
    "amqp-def": (
        _NAME,
        Field("host", "host"),
        Field("port", "int", lo=1, hi=65535),
        Field("vhost"),
        Field("username"),
        Field("password", secret=True),
        # Seconds; the broker gives a vanished holder's unacked messages back after about two
        # missed heartbeats, so this bounds how long they wait (0 would be never: refused).
        Field("heartbeat", "int", lo=1, hi=MAX_AMQP_HEARTBEAT),
        Field("use_tls", "bool"),
        # Seconds a connection has to get through TCP, TLS and the AMQP handshake: a port that
        # takes it and never answers (a hung broker, another service) fails after this.
        Field("handshake_timeout", "int", lo=1, hi=MAX_AMQP_HANDSHAKE_TIMEOUT, unset=AMQP_HANDSHAKE_TIMEOUT),
    ),
    "amqp-channel": (
        _NAME,
        _DEF,
        # AMQP names are at most 255 bytes, and the parking queue adds ".zato-parked" (12)
        Field(
            "queue",
            required=True,
            max_len=AMQP_QUEUE_MAX,
            why="255, AMQP's limit, less the .zato-parked suffix of its parking queue",
        ),
        Field("service", required=True),
        Field("prefetch", "int", lo=1, hi=65535),
        Field("data_format", "choice", choices=DATA_FORMATS),
        Field("max_deliveries", "int", lo=1, hi=1000),
        _MAX_IN_FLIGHT,
        _TIMEOUT,
        _ACTIVE,
    ),
    "amqp-outgoing": (
        _NAME,
        _DEF,
        Field("exchange"),
        Field("routing_key"),
        Field("delivery_mode", "int", lo=1, hi=2),
        Field("content_type"),
        _ACTIVE,
    ),
    "ibm-mq-def": (
        _NAME,
        Field("queue_manager", "mq-qmgr"),
        Field("channel", "mq-channel"),
        Field("conn_name", "conn_name"),
        Field("username"),
        Field("password", secret=True),
        # the driver packs these into fixed fields (MQCD SSLCipherSpec, MQSCO KeyRepository),
        # cutting a longer value without a word
        Field("cipher_spec", max_len=32, why="IBM MQ's MQCD SSLCipherSpec"),
        Field("key_repository", max_len=256, why="IBM MQ's MQSCO KeyRepository"),
        Field("heartbeat", "int", hi=999999),
    ),
    "ibm-mq-channel": (
        _NAME,
        _DEF,
        Field("queue", "mq-name", required=True),
        Field("service", required=True),
        Field("data_format", "choice", choices=DATA_FORMATS),
        Field("backout_threshold", "int", hi=999999999),
        Field("backout_queue", "mq-name"),
        Field("max_in_flight", "int", lo=1, hi=MAX_IN_FLIGHT),
        _TIMEOUT,
        Field("convert", "bool"),
        _ACTIVE,
    ),
    "ibm-mq-outgoing": (
        _NAME,
        _DEF,
        Field("queue", "mq-name", required=True),
        Field("persistence", "choice", choices=MQ_PERSISTENCE),
        Field("expiry", "int", hi=99999999),
        Field("priority", "int", lo=-1, hi=9),
        _ACTIVE,
    ),
    "zmq-channel": (
        _NAME,
        Field("address", "zmq-bind", required=True),  # binds unless ">" says connect
        Field("socket_type", "choice", choices=("PULL", "SUB")),
        Field("sub_prefix"),
        Field("service", required=True),
        Field("data_format", "choice", choices=DATA_FORMATS),
        _MAX_IN_FLIGHT,
        _TIMEOUT,
        _ACTIVE,
    ),
    "zmq-outgoing": (
        _NAME,
        Field("address", "zmq-connect", required=True),  # connects unless "@" says bind
        Field("socket_type", "choice", choices=("PUSH", "PUB")),
        _ACTIVE,
    ),
    "http-outgoing": (
        _NAME,
        Field("address", "http-url", required=True),
        Field("url_path"),
        Field("timeout", "int", lo=1, hi=3600),
        Field("username"),
        Field("password", secret=True),
        Field("data_format", "choice", choices=DATA_FORMATS),
        _ACTIVE,
    ),
    "sql-outgoing": (
        _NAME,
        Field("url", "sql-url", required=True),
        Field("password", secret=True),
        Field("pool_size", "int", lo=1, hi=1000),
        _ACTIVE,
    ),
    # What an HTTP channel's callers must present (the channel's `security` names one).
    "security": (
        _NAME,
        Field("type", "choice", required=True, choices=SECURITY_TYPES),
        Field("username"),  # basic_auth
        Field("realm"),  # basic_auth
        Field("header", "header"),  # apikey
        Field("password", secret=True, hashed=True),  # the password or the API key
        _ACTIVE,
    ),
}

# The model of each kind. This module reads them by kind, through the columns they share (every
# one: cluster_id, name; channels and outgoing: def_id, is_active), which no common base class
# declares: type[Any], so those reads type-check as the dynamic look-ups they are.
MODELS: dict[str, type[Any]] = {
    "amqp-def": AMQPDefinition,
    "amqp-channel": AMQPChannel,
    "amqp-outgoing": AMQPOutgoing,
    "ibm-mq-def": IBMMQDefinition,
    "ibm-mq-channel": IBMMQChannel,
    "ibm-mq-outgoing": IBMMQOutgoing,
    "zmq-channel": ZMQChannel,
    "zmq-outgoing": ZMQOutgoing,
    "http-outgoing": HTTPOutgoing,
    "sql-outgoing": SQLOutgoing,
    "security": HTTPSecurity,
}
# Values (all of them defaults) that stand for something else: (kind, field) -> (value, meaning)
MEANING: dict[tuple[str, str], tuple[Any, str]] = {
    ("amqp-channel", "max_in_flight"): (0, "the prefetch"),
    ("zmq-channel", "max_in_flight"): (0, str(ZMQ_IN_FLIGHT)),
    ("ibm-mq-outgoing", "priority"): (-1, "the queue's default"),
    ("ibm-mq-outgoing", "expiry"): (0, "never expires"),
    ("ibm-mq-channel", "backout_threshold"): (0, "the queue's BOTHRESH, else 5"),
    ("ibm-mq-channel", "backout_queue"): ("", "the queue's BOQNAME, else none"),
}

KINDS = tuple(FIELDS)
# Fields kept hashed (zato.common.passwords), by kind.
HASHED = {kind: {f.name for f in fields if f.hashed} for kind, fields in FIELDS.items()}
# Fields of one security type only: a view of the other type leaves them out.
SECURITY_ONLY = {"username": "basic_auth", "realm": "basic_auth", "header": "apikey"}
# Kinds that run as a connector process on the lease holder.
CONNECTOR_KINDS = ("amqp-channel", "amqp-outgoing", "ibm-mq-channel", "ibm-mq-outgoing", "zmq-channel")
# The definition kind each channel or outgoing kind refers to with its "def" field, and the key
# under which load() puts that definition.
DEF_KINDS = {
    "amqp-channel": "amqp-def",
    "amqp-outgoing": "amqp-def",
    "ibm-mq-channel": "ibm-mq-def",
    "ibm-mq-outgoing": "ibm-mq-def",
}
DEF_KEYS = {"amqp-def": "amqp", "ibm-mq-def": "ibm_mq"}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # names that are also safe in a URL path
# Outgoing HTTP and SQL connections are named in service code only (`self.out.rest['Customer
# API']`, as Zato 4.1's docs name them) and run no connector: their names may hold spaces too
# (inside; a name is stripped). Admin API paths take them %-escaped (/conn/http-outgoing/Customer%20API).
SPACED_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_. -]{0,62}[A-Za-z0-9_.-])?")
SPACED_NAME_KINDS = ("http-outgoing", "sql-outgoing")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_kind(kind: str) -> tuple[Field, ...]:
    try:
        return FIELDS[kind]
    except KeyError:
        raise ConnectorError(
            f"unknown connection kind {kind!r} (expected one of: {', '.join(KINDS)})"
        ) from None


def coerce(kind: str, field: Field, value: Any) -> Any:
    """`value` converted to the field's type, or ConnectorError naming kind and field."""
    where = f"{kind} {field.name}"
    if field.type == "int":
        if isinstance(value, bool) or not (
            isinstance(value, int) or str(value).strip().lstrip("-").isdigit()
        ):
            raise ConnectorError(f"{where}: {value!r} is not a whole number")
        number = int(value)
        if not field.lo <= number <= field.hi:
            raise ConnectorError(f"{where}: {number} is not in {field.lo}..{field.hi}")
        return number
    if field.type == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in _TRUE + _FALSE:
            raise ConnectorError(f"{where}: {value!r} is not true or false")
        return text in _TRUE
    if not isinstance(value, str):
        raise ConnectorError(f"{where}: {value!r} is not a string")
    value = value.strip() if field.name != "password" else value
    if CONTROL_RE.search(value):
        raise ConnectorError(f"{where}: control characters (NUL, line breaks...) are not allowed")
    if field.name == "name" and kind in SPACED_NAME_KINDS:
        if not SPACED_NAME_RE.fullmatch(value):
            raise ConnectorError(
                f"{where}: {value!r} must be 1-64 letters, digits, spaces, _ . - (not first)"
            )
    elif field.name == "name" and not NAME_RE.fullmatch(value):
        raise ConnectorError(f"{where}: {value!r} must be 1-64 letters, digits, _ . - (not first)")
    if field.type == "host":
        return check_host(where, value)
    if field.type == "conn_name":
        return check_conn_name(where, value)
    if field.type == "choice":
        upper = value.upper() if field.choices[0].isupper() else value.lower()
        if upper not in field.choices:
            raise ConnectorError(f"{where}: {value!r} is not one of {', '.join(field.choices)}")
        return upper
    if field.required and not value:
        raise ConnectorError(f"{where} must not be empty")
    if len(value) > field.max_len:
        why = f" ({field.why})" if field.why else ""
        raise ConnectorError(f"{where} is longer than {field.max_len} characters{why}: {len(value)}")
    if field.max_len < 400 and len(value.encode()) > field.max_len:
        raise ConnectorError(f"{where} is longer than {field.max_len} bytes as UTF-8 ({field.why})")
    if field.type in URL_CHECKS:
        URL_CHECKS[field.type](where, value)
    return value


def check_host(where: str, value: str, hint: str = "give one such as broker.example.com or 10.0.0.5") -> str:
    """A host to connect to: an IP address or a DNS host name (zato.coord.parse.host). Any other
    ('a b', '') was stored, and its connector failed to resolve it at every retry, for ever."""
    try:
        parse.host(value)
    except parse.BadEntry:
        raise ConnectorError(
            f"{where}: {value[:80]!r} is neither an IP address nor a host name; {hint}"
        ) from None
    return value


def check_conn_name(where: str, value: str) -> str:
    """IBM MQ connection names: `host(port)`, comma-separated for a multi-instance queue manager."""
    parts = [p.strip() for p in value.split(",")]
    for part in parts:
        host, _, rest = part.partition("(")
        port = rest[:-1] if rest.endswith(")") else ""
        if not host.strip() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConnectorError(f"{where}: {part!r} is not host(port), e.g. mq.example.com(1414)")
        check_host(where, host.strip(), "give host(port), e.g. mq.example.com(1414)")
    joined = ",".join(parts)
    if len(joined.encode()) > MQ_CONN_NAME_MAX:  # the driver would cut it: a host lost, or half of one
        raise ConnectorError(
            f"{where} is longer than {MQ_CONN_NAME_MAX} bytes (IBM MQ's MQCD ConnectionName): "
            f"{len(joined.encode())}; give fewer hosts, or shorter names"
        )
    return joined


def _http_url(where: str, value: str) -> None:
    from urllib.parse import urlsplit

    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1]) == 0:
        raise ConnectorError(f"{where}: {value!r} is not an http:// or https:// address")
    try:
        parts = urlsplit(value)
        host, password = parts.hostname or "", parts.password
    except ValueError:  # an unclosed [ of an IPv6 address
        host, password = "", None
    if password is not None:  # the address is shown in every view: the value is not said either
        raise ConnectorError(
            f"{where}: keep the password out of the address; give it as username and password"
        )
    check_host(where, host, "give scheme, host and port, e.g. http://crm.example.com:8080")


HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an HTTP field name (RFC 9110 token)


def _header(where: str, value: str) -> None:
    if not HEADER_RE.fullmatch(value):
        raise ConnectorError(f"{where}: {value!r} is not an HTTP header name, e.g. X-API-Key")
    if "_" in value:  # gunicorn drops such headers: the key would never arrive
        raise ConnectorError(f"{where}: {value!r}: servers drop headers with _ in their names; use -")
    if value.lower() in ("content-type", "content-length", "host"):
        raise ConnectorError(f"{where}: {value!r} describes the request; give the key its own header")


def _sql_url(where: str, value: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        hint = "dialect://user@host/db"
        raise ConnectorError(f"{where}: {value!r} is not an SQLAlchemy URL ({hint})") from None
    except ValueError:  # SQLAlchemy's int() of the port: was a traceback from the CLI, a 500
        raise ConnectorError(
            f"{where}: {value!r}: its port is not a number; give dialect://user@host:PORT/db"
        ) from None
    if url.password:
        raise ConnectorError(f"{where}: keep the password out of the URL; give it as password")
    if url.host:  # none: SQLite, or a socket given in the query
        check_host(where, url.host, "give dialect://user@host/db, e.g. postgresql://crm@db.example.com/crm")


def _zmq_address(where: str, value: str, bind_by_default: bool) -> None:
    try:
        zmq_address.check(value, bind_by_default)
    except ValueError as e:
        raise ConnectorError(f"{where}: {e}") from None


def _mq_name(where: str, value: str) -> None:
    from zato.connector.ibmmq_outgoing import check_mq_name  # no IBM MQ driver needed

    if value:
        check_mq_name(where, value)


def _mq_channel(where: str, value: str) -> None:
    from zato.connector.ibmmq_outgoing import check_channel_name  # no IBM MQ driver needed

    check_channel_name(where, value)


def _mq_qmgr(where: str, value: str) -> None:
    from zato.connector.ibmmq_outgoing import check_qmgr_name  # no IBM MQ driver needed

    check_qmgr_name(where, value)


URL_CHECKS = {
    "mq-name": _mq_name,
    "mq-channel": _mq_channel,
    "mq-qmgr": _mq_qmgr,
    "http-url": _http_url,
    "sql-url": _sql_url,
    "header": _header,
    "zmq-bind": lambda where, value: _zmq_address(where, value, bind_by_default=True),
    "zmq-connect": lambda where, value: _zmq_address(where, value, bind_by_default=False),
}


def _refuse_cluster_ports(s: Session, cid: int, kind: str, values: dict, reserved: dict[int, str]) -> None:
    """A ZeroMQ socket must not bind a port the cluster's own servers (ODB rows), load balancer
    or dashboard (`reserved`, from the quickstart's configs when the CLI knows them) listen on:
    whichever starts second fails ("port is not free", or the connector's bind)."""
    field = next((f for f in FIELDS[kind] if f.name == "address"), None)
    if field is None or field.type not in ("zmq-bind", "zmq-connect") or "address" not in values:
        return
    taken = dict(reserved)
    for name, server_port in s.execute(select(Server.name, Server.port).where(Server.cluster_id == cid)):
        taken[server_port] = f"server {name}"
    for where, bind, port in zmq_address.check(values["address"], field.type == "zmq-bind"):
        if bind and port in taken:
            raise ConnectorError(f"{kind} address: {where} would bind port {port}, the port of {taken[port]}")


def validate(kind: str, values: dict, creating: bool) -> dict:
    """Checked and converted values; unknown fields and missing required ones are errors."""
    fields = {f.name: f for f in check_kind(kind)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConnectorError(f"{kind}: unknown field(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    if creating:
        missing = [f.name for f in fields.values() if f.required and values.get(f.name) is None]
        if missing:
            raise ConnectorError(f"{kind}: missing required field(s) {', '.join(missing)}")
    return {k: coerce(kind, fields[k], v) for k, v in values.items() if v is not None}


NO_CLUSTER = -1  # matches no row: reads of a cluster with no row find nothing


def cluster_id(s: Session, cluster: str, create: bool = False) -> int:
    """The id of `cluster`; with `create`, its row is made when this is its first definition."""
    row = s.scalar(select(Cluster).where(Cluster.name == cluster))
    if row is None:
        if not create:
            return NO_CLUSTER
        row = Cluster(name=cluster)
        s.add(row)
        s.flush()
    return row.id


def _find(s: Session, cid: int, kind: str, name: str) -> Any:
    model = MODELS[kind]
    return s.scalar(select(model).where(model.cluster_id == cid, model.name == name))


def _get(s: Session, cid: int, kind: str, name: str) -> Any:
    obj = _find(s, cid, kind, name)
    if obj is None:
        raise DefinitionNotFound(f"no {kind} named {name!r}")
    return obj


def _apply(s: Session, cid: int, kind: str, obj: Any, values: dict) -> None:
    for key, value in values.items():
        if key == "def":
            def_kind = DEF_KINDS[kind]
            found = _find(s, cid, def_kind, value)
            if found is None:
                raise ConnectorError(f"{kind} def: no {def_kind} named {value!r}")
            obj.def_id = found.id
        elif key in HASHED.get(kind, ()):
            setattr(obj, key, hash_secret(value) if value else "")
        else:
            setattr(obj, key, value)
    if kind == "security":
        _check_security(obj)
    if kind == "ibm-mq-def":
        _check_ibm_mq_def(obj)


def _check_security(obj: HTTPSecurity) -> None:
    where = f"security {obj.name!r}"
    if obj.type == "basic_auth" and not obj.username:
        raise ConnectorError(f"{where}: a basic_auth definition needs a username")
    if not obj.password:
        what = "an API key" if obj.type == "apikey" else "a password"
        raise ConnectorError(f"{where}: {obj.type} needs {what} (password; - reads it from stdin)")


def _check_ibm_mq_def(obj: Any) -> None:
    """A password goes to the queue manager only with a username (the driver fills MQCSP with
    both, or neither): one without was stored and never sent, and the connection was made as the
    client's operating-system user, unsaid."""
    if obj.password and not obj.username:
        raise ConnectorError(
            f"ibm-mq-def {obj.name!r}: a password without a username is never sent (IBM MQ takes "
            "one only with a user id): give the username too (--username), or leave the password out"
        )


def channels_using(s: Session, cid: int, security: str) -> list[str]:
    """The HTTP channels whose callers must satisfy security definition `security`."""
    query = select(HTTPChannel.name).where(HTTPChannel.cluster_id == cid, HTTPChannel.security == security)
    return list(s.scalars(query.order_by(HTTPChannel.name)))


def create(odb: ODB, cluster: str, kind: str, values: dict, reserved: dict[int, str] | None = None) -> dict:
    """`reserved`: ports (-> what uses them) besides the servers' that nothing may bind."""
    clean = validate(kind, values, creating=True)
    with odb.change(cluster) as s:
        cid = cluster_id(s, cluster, create=True)
        if _find(s, cid, kind, clean["name"]) is not None:
            raise ConnectorError(
                f"{kind} {clean['name']!r} already exists: change it with `zato conn edit {kind}`,"
                " or delete it first"
            )
        _refuse_cluster_ports(s, cid, kind, clean, reserved or {})
        obj = MODELS[kind](cluster_id=cid)
        _apply(s, cid, kind, obj, clean)
        s.add(obj)
        s.flush()
        return view(s, kind, obj)


def edit(
    odb: ODB, cluster: str, kind: str, name: str, values: dict, reserved: dict[int, str] | None = None
) -> dict:
    clean = validate(kind, values, creating=False)
    with odb.change(cluster) as s:
        cid = cluster_id(s, cluster)
        obj = _get(s, cid, kind, name)
        _refuse_cluster_ports(s, cid, kind, clean, reserved or {})
        new_name = clean.get("name")
        if new_name and new_name != name and _find(s, cid, kind, new_name) is not None:
            raise ConnectorError(
                f"{kind} {new_name!r} already exists: choose another name, or delete that one first"
            )
        if new_name and new_name != name and kind == "security":
            _refuse_if_used(s, cid, name, "renamed")
        _apply(s, cid, kind, obj, clean)
        s.flush()
        return view(s, kind, obj)


def delete(odb: ODB, cluster: str, kind: str, name: str) -> None:
    check_kind(kind)
    with odb.change(cluster) as s:
        cid = cluster_id(s, cluster)
        obj = _get(s, cid, kind, name)
        if kind == "security":
            _refuse_if_used(s, cid, name, "deleted")
        if kind in DEF_KEYS:
            users = _users_of_def(s, kind, obj.id)
            if users:
                raise ConnectorError(
                    f"{kind} {name!r} is used by {', '.join(users)}; delete or move those first"
                )
        s.delete(obj)


def _refuse_if_used(s: Session, cid: int, name: str, what: str) -> None:
    users = channels_using(s, cid, name)
    if users:
        raise ConnectorError(
            f"security {name!r} cannot be {what}: HTTP channel(s) {', '.join(users)} use it;"
            " give them another one first (zato channel create ... --security NAME)"
        )


def _users_of_def(s: Session, def_kind: str, def_id: int) -> list[str]:
    users = []
    for kind in (k for k, d in DEF_KINDS.items() if d == def_kind):
        model = MODELS[kind]
        for row in s.scalars(select(model).where(model.def_id == def_id).order_by(model.name)):
            users.append(f"{kind} {row.name!r}")
    return users


def view(s: Session, kind: str, obj: Any) -> dict:
    """The public form of a definition: field names as in FIELDS, password masked."""
    out: dict[str, Any] = {"kind": kind}
    for f in FIELDS[kind]:
        if kind == "security" and SECURITY_ONLY.get(f.name, obj.type) != obj.type:
            continue  # a field of the other security type
        if f.name == "def":
            out["def"] = _definition(s, kind, obj).name
        elif f.secret:
            out[f.name] = MASK
        else:
            value = getattr(obj, f.name)
            if f.type in URL_TYPES and value:  # a row from before its password was refused there
                value = redact(value)
            out[f.name] = f.unset if value is None else value  # a row from before: what it goes by
    return out


def _definition(s: Session, kind: str, obj: Any) -> Any:
    """The AMQP or IBM MQ definition a channel or outgoing row refers to (def_id)."""
    found = s.get(MODELS[DEF_KINDS[kind]], obj.def_id)
    if found is None:  # the foreign key (ON DELETE CASCADE) keeps this from happening
        raise DefinitionNotFound(f"{kind} {obj.name!r}: its {DEF_KINDS[kind]} is gone")
    return found


def list_all(odb: ODB, cluster: str, kind: str | None = None) -> list[dict]:
    kinds = (kind,) if kind else KINDS
    for k in kinds:
        check_kind(k)
    out: list[dict] = []
    with odb.session() as s:
        cid = cluster_id(s, cluster)
        for k in kinds:
            model = MODELS[k]
            for obj in s.scalars(select(model).where(model.cluster_id == cid).order_by(model.name)):
                out.append(view(s, k, obj))
    return out


def get(odb: ODB, cluster: str, kind: str, name: str) -> dict:
    """The public view of one definition (password masked)."""
    check_kind(kind)
    with odb.session() as s:
        return view(s, kind, _get(s, cluster_id(s, cluster), kind, name))


def load(odb: ODB, cluster: str, kind: str, name: str) -> dict:
    """A definition with everything a connector needs, password included (never log this).
    Channels and outgoing connections carry their definition under "amqp" or "ibm_mq"."""
    with odb.session() as s:
        cid = cluster_id(s, cluster)
        obj = _get(s, cid, kind, name)
        return _full(s, kind, obj)


def _full(s: Session, kind: str, obj: Any) -> dict:
    out = {c.key: getattr(obj, c.key) for c in obj.__table__.columns}
    out["kind"] = kind
    if kind in DEF_KINDS:
        d = _definition(s, kind, obj)
        out["def"] = d.name
        out[DEF_KEYS[DEF_KINDS[kind]]] = {c.key: getattr(d, c.key) for c in d.__table__.columns}
    return out


def load_connectors(odb: ODB, cluster: str) -> list[dict]:
    """Every active definition that runs as a connector process, in full (with passwords)."""
    out: list[dict] = []
    with odb.session() as s:
        cid = cluster_id(s, cluster)
        for kind in CONNECTOR_KINDS:
            model = MODELS[kind]
            rows = s.scalars(select(model).where(model.cluster_id == cid, model.is_active.is_(True)))
            out.extend(_full(s, kind, obj) for obj in rows)
    return out


def active_connector_names(odb: ODB, cluster: str) -> list[str]:
    """KIND:NAME of every active definition that runs as a connector process (no secret read):
    the connectors the lease holder's supervisor must run."""
    out: list[str] = []
    with odb.session() as s:
        cid = cluster_id(s, cluster)
        for kind in CONNECTOR_KINDS:
            model = MODELS[kind]
            names = s.scalars(select(model.name).where(model.cluster_id == cid, model.is_active.is_(True)))
            out.extend(f"{kind}:{name}" for name in names)
    return sorted(out)


def active_users_of_def(odb: ODB, cluster: str, def_kind: str, name: str) -> list[str]:
    """KIND:NAME of the active connectors that connect through definition `name` of `def_kind`
    (amqp-def, ibm-mq-def): those the lease holder restarts when it is edited."""
    with odb.session() as s:
        cid = cluster_id(s, cluster)
        d = _get(s, cid, def_kind, name)
        out: list[str] = []
        for kind in (k for k, dk in DEF_KINDS.items() if dk == def_kind):
            model = MODELS[kind]
            where = (model.def_id == d.id, model.is_active.is_(True))
            out.extend(f"{kind}:{n}" for n in s.scalars(select(model.name).where(*where)))
    return sorted(out)


def row_id(odb: ODB, cluster: str, kind: str, name: str) -> int:
    """The ODB id of one definition (what stays when it is renamed)."""
    check_kind(kind)
    with odb.session() as s:
        return int(_get(s, cluster_id(s, cluster), kind, name).id)


def names_by_id(odb: ODB, cluster: str, kinds: tuple[str, ...]) -> dict[tuple[str, int], str]:
    """(kind, ODB id) -> name of every definition of `kinds`, active or not (no secret read)."""
    out: dict[tuple[str, int], str] = {}
    with odb.session() as s:
        cid = cluster_id(s, cluster)
        for kind in kinds:
            model = MODELS[kind]
            for ident, name in s.execute(select(model.id, model.name).where(model.cluster_id == cid)):
                out[(kind, int(ident))] = name
    return out
