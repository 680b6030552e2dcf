"""CRUD helpers over the ODB: clusters, servers, deployed modules, services, HTTP channels.

Every function takes an `ODB` and a cluster name and returns plain frozen records, never
ORM objects, so callers cannot keep sessions alive by accident.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from urllib.parse import unquote

from sqlalchemy import delete, inspect, or_, select, true
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from zato.common import service_name as service_name_rule
from zato.common.errors import ConfigError, ODBError
from zato.odb import connectors
from zato.odb.engine import ODB
from zato.odb.models import (
    Cluster,
    DeployedModule,
    HTTPChannel,
    HTTPSecurity,
    Server,
    Service,
    UserConfigFile,
    utcnow,
)
from zato.server.router import param_names, shape

DATA_FORMATS = ("json", "text")


@dataclass(frozen=True)
class ModuleRecord:
    name: str
    source: str
    hash: str
    version: int
    deployed_at: datetime


@dataclass(frozen=True)
class ChannelRecord:
    name: str
    url_path: str
    method: str | None
    service: str
    data_format: str
    is_active: bool
    max_body: int | None = None  # bytes; None: the server's [limits] max_body
    security: str | None = None  # the security definition callers must satisfy; None: open


@dataclass(frozen=True)
class ServerRecord:
    name: str
    host: str
    port: int
    up_status: str | None
    up_mod_date: datetime | None


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _cluster_id(s: Session, cluster: str) -> int:
    cid = s.scalar(select(Cluster.id).where(Cluster.name == cluster))
    if cid is None:
        raise ODBError(f"cluster {cluster!r} does not exist in the ODB")
    return cid


# Clusters and servers


def check_cluster(engine: Engine, cluster: str, where: str) -> None:
    """ODBError in one line unless the ODB has `cluster` (`where` names the setting that named
    it), with the cluster it has that is closest, if any: a server of a cluster the ODB lacks
    would start and then have every worker fail."""
    with Session(engine) as s:
        if s.scalar(select(Cluster.id).where(Cluster.name == cluster)) is not None:
            return
        names = sorted(s.scalars(select(Cluster.name)).all())
    close = difflib.get_close_matches(cluster, names, n=1)
    hint = (
        f" (did you mean {close[0]!r}?)"
        if close
        else (f" (it has {', '.join(map(repr, names[:5]))})" if names else "")
    )
    raise ODBError(f"{where}: cluster {cluster!r} does not exist in the ODB{hint}")


def has_schema(engine: Engine) -> bool:
    """Whether the ODB has Zato's tables (its cluster table) at all."""
    try:
        return inspect(engine).has_table(Cluster.__tablename__)
    except SQLAlchemyError as e:
        raise ODBError(f"ODB error: {str(e).splitlines()[0]}") from None


def ensure_cluster(odb: ODB, cluster: str, description: str = "") -> bool:
    """Create the cluster row unless it exists; True if it was created."""
    with odb.change(cluster) as s:
        if s.scalar(select(Cluster.id).where(Cluster.name == cluster)) is not None:
            return False
        s.add(Cluster(name=cluster, description=description or None))
    return True


def add_server(odb: ODB, cluster: str, name: str, host: str, port: int) -> None:
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        exists = s.scalar(select(Server.id).where(Server.cluster_id == cid, Server.name == name))
        if exists is not None:
            raise ODBError(f"server {name!r} already exists in cluster {cluster!r}")
        # two servers at one address: the second could never start beside the first (its port taken)
        there = s.scalar(
            select(Server.name).where(Server.cluster_id == cid, Server.host == host, Server.port == port)
        )
        if there is not None:
            raise ODBError(
                f"server {there!r} of cluster {cluster!r} is already at {host}:{port}: choose another --port"
            )
        s.add(Server(cluster_id=cid, name=name, host=host, port=port, token=secrets.token_hex(16)))


def set_up_status(
    odb: ODB, cluster: str, server: str, status: str, relist: tuple[str, int] | None = None
) -> bool:
    """Record the server's up_status. A server not in the cluster's list (taken off it with
    `zato cluster forget`, then started again) is listed again at `relist` (host, port) and
    True returned; without `relist`, ODBError."""
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        row = s.scalar(select(Server).where(Server.cluster_id == cid, Server.name == server))
        listed_again = False
        if row is None:
            if relist is None:
                raise ODBError(f"server {server!r} is not in cluster {cluster!r}")
            host, port = relist
            row = Server(cluster_id=cid, name=server, host=host, port=port, token=secrets.token_hex(16))
            s.add(row)
            listed_again = True
        row.up_status = status
        row.up_mod_date = utcnow()
    return listed_again


def delete_server(odb: ODB, cluster: str, name: str) -> bool:
    """Remove a server from the cluster's list; False if it was not in it."""
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        stmt = delete(Server).where(Server.cluster_id == cid, Server.name == name)
        return bool(cast(CursorResult, s.execute(stmt)).rowcount)


def list_servers(odb: ODB, cluster: str) -> list[ServerRecord]:
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        rows = s.scalars(select(Server).where(Server.cluster_id == cid).order_by(Server.name))
        return [ServerRecord(r.name, r.host, r.port, r.up_status, r.up_mod_date) for r in rows]


# Deployed modules and their services


def store_module(
    odb: ODB, cluster: str, name: str, source: str, services: dict[str, str]
) -> tuple[int, bool]:
    """Store a module's source and the services it defines ({service name: impl name}).
    Returns (version, changed); an unchanged source keeps its version."""
    digest = source_hash(source)
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        _check_service_names(s, cid, name, services)
        row = s.scalar(
            select(DeployedModule).where(DeployedModule.cluster_id == cid, DeployedModule.name == name)
        )
        if row is not None and row.hash == digest:
            return row.version, False
        if row is None:
            row = DeployedModule(cluster_id=cid, name=name, source=source, hash=digest, version=1)
            s.add(row)
        else:
            row.source, row.hash, row.version, row.deployed_at = source, digest, row.version + 1, utcnow()
        s.execute(delete(Service).where(Service.cluster_id == cid, Service.module_name == name))
        for service, impl in sorted(services.items()):
            s.add(Service(cluster_id=cid, name=service, impl_name=impl, module_name=name))
        s.flush()
        return row.version, True


def _check_service_names(s: Session, cid: int, module: str, services: dict[str, str]) -> None:
    if not services:
        return
    rows = s.execute(
        select(Service.name, Service.module_name).where(
            Service.cluster_id == cid, Service.name.in_(list(services))
        )
    )
    for service, owner in rows:
        if owner != module:
            raise ODBError(f"service {service!r} is already defined by module {owner!r}")


def delete_module(odb: ODB, cluster: str, name: str) -> list[str] | None:
    """Remove a deployed module and its services; the names of the services it defined, or
    None if no module of that name is deployed."""
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        row = s.scalar(
            select(DeployedModule).where(DeployedModule.cluster_id == cid, DeployedModule.name == name)
        )
        if row is None:
            return None
        where = (Service.cluster_id == cid, Service.module_name == name)
        services = sorted(s.scalars(select(Service.name).where(*where)))
        s.execute(delete(Service).where(*where))
        s.delete(row)
        return services


def users_of_services(odb: ODB, cluster: str, services: Iterable[str]) -> list[str]:
    """The HTTP channels and connector channels that invoke one of `services`, as "KIND NAME"."""
    wanted = set(services)
    users = [f"HTTP channel {ch.name}" for ch in list_channels(odb, cluster) if ch.service in wanted]
    for kind, fields in connectors.FIELDS.items():
        if any(f.name == "service" for f in fields):
            found = connectors.list_all(odb, cluster, kind)
            users += [f"{kind} {d['name']}" for d in found if d["service"] in wanted]
    return users


def get_module(odb: ODB, cluster: str, name: str) -> ModuleRecord | None:
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        row = s.scalar(
            select(DeployedModule).where(DeployedModule.cluster_id == cid, DeployedModule.name == name)
        )
        return None if row is None else _module(row)


def list_modules(odb: ODB, cluster: str) -> list[ModuleRecord]:
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        rows = s.scalars(
            select(DeployedModule).where(DeployedModule.cluster_id == cid).order_by(DeployedModule.name)
        )
        return [_module(r) for r in rows]


def _module(r: DeployedModule) -> ModuleRecord:
    return ModuleRecord(r.name, r.source, r.hash, r.version, r.deployed_at)


# User-config files deployed to the whole cluster (zato.service.user_config)


@dataclass(frozen=True)
class UserConfigRecord:
    name: str
    text: str
    hash: str


def store_user_config(odb: ODB, cluster: str, name: str, text: str) -> bool:
    """Store a user-config file's text; False if it was deployed already, unchanged."""
    digest = source_hash(text)
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        row = s.scalar(
            select(UserConfigFile).where(UserConfigFile.cluster_id == cid, UserConfigFile.name == name)
        )
        if row is not None and row.hash == digest:
            return False
        if row is None:
            s.add(UserConfigFile(cluster_id=cid, name=name, text=text, hash=digest))
        else:
            row.text, row.hash, row.deployed_at = text, digest, utcnow()
        return True


def delete_user_config(odb: ODB, cluster: str, name: str) -> bool:
    """Remove a deployed user-config file; False if none of that name is deployed."""
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        stmt = delete(UserConfigFile).where(UserConfigFile.cluster_id == cid, UserConfigFile.name == name)
        return bool(cast(CursorResult, s.execute(stmt)).rowcount)


def get_user_config(odb: ODB, cluster: str, name: str) -> UserConfigRecord | None:
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        row = s.scalar(
            select(UserConfigFile).where(UserConfigFile.cluster_id == cid, UserConfigFile.name == name)
        )
        return None if row is None else UserConfigRecord(row.name, row.text, row.hash)


def list_user_config(odb: ODB, cluster: str) -> list[UserConfigRecord]:
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        rows = s.scalars(
            select(UserConfigFile).where(UserConfigFile.cluster_id == cid).order_by(UserConfigFile.name)
        )
        return [UserConfigRecord(r.name, r.text, r.hash) for r in rows]


def list_services(odb: ODB, cluster: str) -> dict[str, str]:
    """{service name: module name} of every deployed service."""
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        rows = s.execute(select(Service.name, Service.module_name).where(Service.cluster_id == cid))
        return {name: module or "" for name, module in rows}


def unknown_service(odb: ODB, cluster: str, name: str | None, what: str) -> str | None:
    """A warning if no server would find service `name` (not deployed in the cluster, and not
    one of the servers' own: every "zato." name is reserved for them); `what` fails then."""
    if not name or name.startswith("zato.") or name in list_services(odb, cluster):
        return None
    return (
        f"no service named {name!r} is deployed in cluster {cluster}: {what} fail until a module "
        "defining it is (zato deploy)"
    )


# HTTP channels


def save_channel(odb: ODB, cluster: str, ch: ChannelRecord, opening: bool = False) -> bool:
    """Create or replace the channel named ch.name; True if it was created. Replacing a
    secured channel with one without security is refused unless `opening` says so: a
    forgotten --security must not open a channel to anyone."""
    if ch.data_format not in DATA_FORMATS:
        raise ODBError(f"data format {ch.data_format!r} is not one of {', '.join(DATA_FORMATS)}")
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        clash = s.scalar(
            select(HTTPChannel.name).where(
                HTTPChannel.cluster_id == cid,
                HTTPChannel.url_path == ch.url_path,
                HTTPChannel.name != ch.name,
                true()
                if ch.method is None
                else or_(HTTPChannel.method.is_(None), HTTPChannel.method == ch.method),
            )
        )
        if clash:
            raise ODBError(f"channel {clash!r} already serves {ch.url_path}")
        if param_names(ch.url_path):
            _refuse_same_shape(s, cid, ch)
        if (
            ch.security is not None
            and s.scalar(
                select(HTTPSecurity.id).where(
                    HTTPSecurity.cluster_id == cid, HTTPSecurity.name == ch.security
                )
            )
            is None
        ):
            raise ODBError(
                f"channel {ch.name}: no security definition named {ch.security!r}"
                " (zato conn create security DIR --name ... --type basic_auth|apikey)"
            )
        row = s.scalar(select(HTTPChannel).where(HTTPChannel.cluster_id == cid, HTTPChannel.name == ch.name))
        if row is not None and row.security and ch.security is None and not opening:
            raise ODBError(
                f"channel {ch.name} is secured by {row.security!r}: without security it would be open to"
                f" anyone; give its security again to keep it (--security {row.security}), or open it"
                ' on purpose (--open; admin API: "security": null)'
            )
        created = row is None
        if row is None:
            row = HTTPChannel(cluster_id=cid, name=ch.name)
            s.add(row)
        row.url_path, row.method, row.service = ch.url_path, ch.method, ch.service
        row.data_format, row.is_active, row.max_body = ch.data_format, ch.is_active, ch.max_body
        row.security = ch.security
        return created


def _refuse_same_shape(s: Session, cid: int, ch: ChannelRecord) -> None:
    """Two url_paths that differ only in their parameters' names (`/items/{id}` and
    `/items/{item_id}`) match the same requests: which names would a service get?"""
    want = shape(ch.url_path)
    rows = s.execute(
        select(HTTPChannel.name, HTTPChannel.url_path).where(
            HTTPChannel.cluster_id == cid, HTTPChannel.name != ch.name, HTTPChannel.url_path.contains("{")
        )
    )
    for name, url_path in rows:
        if url_path != ch.url_path and shape(url_path) == want:
            raise ODBError(
                f"channel url_path {ch.url_path} matches the same requests as {url_path} of channel "
                f"{name!r}; use the same parameter names ({url_path})"
            )


def delete_channel(odb: ODB, cluster: str, name: str) -> bool:
    with odb.change(cluster) as s:
        cid = _cluster_id(s, cluster)
        stmt = delete(HTTPChannel).where(HTTPChannel.cluster_id == cid, HTTPChannel.name == name)
        result = cast(CursorResult, s.execute(stmt))  # a DELETE's result is a CursorResult
        return bool(result.rowcount)


def list_channels(odb: ODB, cluster: str, name: str | None = None) -> list[ChannelRecord]:
    """Every channel of `cluster` by name, or only the one named `name` ([] if none)."""
    with odb.session() as s:
        cid = _cluster_id(s, cluster)
        query = select(HTTPChannel).where(HTTPChannel.cluster_id == cid)
        if name is not None:
            query = query.where(HTTPChannel.name == name)
        rows = s.scalars(query.order_by(HTTPChannel.name))
        return [
            ChannelRecord(
                r.name,
                r.url_path,
                r.method,
                r.service,
                r.data_format,
                r.is_active,
                r.max_body,
                r.security or None,
            )
            for r in rows
        ]


CHANNEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # also deletable: /channels/{name}
# RFC 3986 path characters and {param}s, plus any other letter, digit or symbol as itself
# (/zamówienia, or /zam%C3%B3wienia: the same channel)
URL_PATH_RE = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@/{}-]|%[0-9A-Fa-f]{2}|[^\x00-\x9f\s])*")
ESCAPED_RE = re.compile(r"%[0-9A-Fa-f]{2}")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_URL_PATH = 1000
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
# Paths answered before any channel: a channel there would never be reached. The server's
# Prometheus metrics (zato.server.metrics.METRICS_PATH) and HAProxy's own URIs (zato.lb.render);
# tests/unit/test_trust_unit.py keeps them equal.
RESERVED_PATHS = {
    "/metrics": "the server's Prometheus metrics",
    "/zato-lb-alive": "the load balancer's health check",
    "/zato-lb-stats": "the load balancer's stats page",
    "/zato-lb-metrics": "the load balancer's Prometheus metrics",
}


def make_channel(
    name: object,
    url_path: object,
    service: object,
    method: object = None,
    data_format: object = "json",
    is_active: object = True,
    max_body: object = None,
    security: object = None,
) -> ChannelRecord:
    """A ChannelRecord from user input; ConfigError naming the bad field."""
    for key, value in (("name", name), ("url_path", url_path), ("service", service)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"channel {key} is required (a non-empty string)")
    assert isinstance(name, str) and isinstance(url_path, str) and isinstance(service, str)  # noqa: S101 - checked above
    if not CHANNEL_NAME_RE.fullmatch(name):
        raise ConfigError(f"channel name {name[:80]!r} must be 1-64 letters, digits, _ . - (not first)")
    if not url_path.startswith("/") or url_path.startswith("/zato/"):
        raise ConfigError(f"channel url_path {url_path[:80]!r} must start with / and not with /zato/")
    if "?" in url_path or "#" in url_path:
        raise ConfigError(
            f"channel url_path {url_path[:80]!r} must be the path alone, without a query string (?)"
            " or fragment (#): a request's query string reaches the service as input whatever it is"
        )
    url_path = canonical_url_path(url_path)
    if url_path in RESERVED_PATHS:
        raise ConfigError(
            f"channel url_path {url_path!r} is {RESERVED_PATHS[url_path]}, answered before any channel"
        )
    param_names(url_path)
    why = service_name_rule.why_not(service)  # whatever deploy accepts: ex.żółw, billing:invoice...
    if why is not None:
        raise ConfigError(f"channel service {service[:80]!r} is not a service name: {why}")
    if (
        method is not None
        and method != ""
        and (not isinstance(method, str) or method.upper() not in HTTP_METHODS)
    ):
        raise ConfigError(f"channel method {method!r} is not one of {', '.join(HTTP_METHODS)}")
    if not isinstance(is_active, bool):
        raise ConfigError(f"channel is_active {is_active!r} must be true or false (a JSON boolean)")
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"channel data_format {data_format!r} is not one of {', '.join(DATA_FORMATS)}")
    if (
        security is not None
        and security != ""
        and (not isinstance(security, str) or not CHANNEL_NAME_RE.fullmatch(security))
    ):
        raise ConfigError(f"channel security {str(security)[:80]!r} is not the name of a security definition")
    return ChannelRecord(
        str(name),
        url_path,
        str(method).upper() if method else None,
        str(service),
        str(data_format),
        bool(is_active),
        _max_body(max_body),
        str(security) if security else None,
    )


def canonical_url_path(url_path: str) -> str:
    """A channel's URL path as requests are matched against it: as text, %-escapes decoded
    (the server decodes request paths the same way). ConfigError if it is not a URL path."""
    if len(url_path) > MAX_URL_PATH or not URL_PATH_RE.fullmatch(url_path):
        raise ConfigError(
            f"channel url_path {url_path[:80]!r} must be a URL path of at most {MAX_URL_PATH} characters"
            " (no spaces, NUL or control characters; % only as %XX)"
        )
    if "%" not in url_path:
        return url_path
    refused = {e.upper() for e in ESCAPED_RE.findall(url_path)} & {"%2F", "%7B", "%7D"}
    if refused:
        raise ConfigError(
            f"channel url_path {url_path[:80]!r}: {', '.join(sorted(refused))} cannot be used "
            "(%2F would read as a /, %7B and %7D as a {param})"
        )
    try:
        text = unquote(url_path, errors="strict")
    except UnicodeDecodeError:
        raise ConfigError(f"channel url_path {url_path[:80]!r}: its %-escapes are not UTF-8") from None
    if CONTROL_RE.search(text):
        raise ConfigError(f"channel url_path {url_path[:80]!r}: its %-escapes stand for a control character")
    return text


MAX_CHANNEL_BODY = 2**31 - 1  # what the ODB's INTEGER column holds on PostgreSQL and Oracle too


def _max_body(value: object) -> int | None:
    """A channel's body limit from user input: None (the server's), or whole bytes >= 0 that
    the ODB can store. Before, a larger one reached the database: OverflowError (SQLite) or
    NumericValueOutOfRange (PostgreSQL), a 500 from the admin API and a traceback from the CLI."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ConfigError(f"channel max_body {value!r} is not a whole number of bytes")
    size = int(value)
    if size > MAX_CHANNEL_BODY:
        raise ConfigError(
            f"channel max_body {size} is over {MAX_CHANNEL_BODY} bytes (2 GiB), the most a channel can have"
        )
    return size
