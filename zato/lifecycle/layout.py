"""Creating component directories: a server, a load balancer, a whole quickstart cluster.

Config files hold secrets, so they are written atomically with mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zato.common.errors import ComponentError, ODBError
from zato.common.fs import atomic_write
from zato.common.log import redact
from zato.config import component
from zato.config.settings import (
    DASHBOARD_CONF,
    LB_CONF,
    METRICS_USERNAME,
    SERVER_CONF,
    USER_CONF_DIR,
    ServerSettings,
    load_dashboard_settings,
    load_lb_settings,
    load_server_settings,
)
from zato.lifecycle.templates import render_ini, template
from zato.odb import api as odb_api
from zato.odb.engine import ODB, check_odb, create_schema

if TYPE_CHECKING:
    from zato.common.tls import CA

DEFAULT_SERVER_PORT = 17010
DEFAULT_LB_PORT = 11223
DEFAULT_DASHBOARD_PORT = 8183
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TLS_DIR = "tls"  # in a quickstart folder: ca.pem (clients trust it) and ca-key.pem
QUICKSTART_USER_CONF = "user-conf"  # in a quickstart folder: every server's self.config files
LB_BUNDLE = "lb.pem"  # in the LB's config folder: certificate, CA, key (mode 0600)
SERVER_BUNDLE = "server.pem"  # in a server's config folder, with --tls: certificate, CA, key (mode 0600)


@dataclass(frozen=True)
class ServerSpec:
    name: str
    cluster: str
    odb_url: str
    redis_url: str = DEFAULT_REDIS
    host: str = "127.0.0.1"
    port: int = DEFAULT_SERVER_PORT
    workers: int = 2
    admin_username: str = "admin"
    admin_password: str = ""  # generated when empty
    cluster_secret: str = ""  # generated when empty; must be the same on every server
    sentinels: str = ""  # host:port,... : find the Redis master through Sentinel
    sentinel_master: str = ""
    announce_host: str = ""  # what peers reach the server at, when host is 0.0.0.0 or differs
    invoke_password: str = ""  # of admin.invoke (Zato's invoke endpoints); generated when empty
    user_conf_dir: str = USER_CONF_DIR  # services' self.config files; relative to the server directory
    # [metrics]: the credentials /metrics needs; no password (quickstart's, bound to 127.0.0.1): open
    metrics_username: str = METRICS_USERNAME
    metrics_password: str = ""

    @property
    def announced_host(self) -> str:
        return self.announce_host or self.host


INVOKE_USERNAME = "admin.invoke"


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def write_conf(path: str, name: str, sections: Mapping[str, Mapping[str, object]]) -> None:
    """config/NAME from the commented template etc/NAME with `sections` filled in; mode 0600."""
    atomic_write(os.path.join(path, "config", name), render_ini(template(name), sections), mode=0o600)


def kvdb_section(url: str, sentinels: str = "", sentinel_master: str = "") -> dict[str, str]:
    """[kvdb]: the Redis URL, and the sentinels (which take precedence) when given."""
    section = {"url": url}
    if sentinels:
        section.update(sentinels=sentinels, sentinel_master=sentinel_master)
    return section


def ensure_empty_dir(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        try:  # the same create run twice: say what is there, and how to run it
            kind = component.read_component(path).kind
        except ComponentError:
            kind = ""
        if kind:
            raise ComponentError(
                f"{path}: already holds a {kind} (zato start {path} starts it; remove the folder to"
                " make a new one there)"
            )
        raise ComponentError(f"{path}: exists and is not an empty directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ComponentError(f"{path}: cannot create the directory: {e.strerror}") from None
    return path


@contextlib.contextmanager
def new_dir(path: str) -> Iterator[str]:
    """`path` as an empty directory for a component (ensure_empty_dir); when the block fails (a
    value its config refuses, the ODB refusing the server), what it made there is removed again,
    so that the same command, mended, can be run again and not find a half-made directory."""
    existed = os.path.isdir(path)
    path = ensure_empty_dir(path)
    try:
        yield path
    except BaseException:
        if existed:  # it was empty: leave it so
            for name in os.listdir(path):
                sub = os.path.join(path, name)
                if os.path.isdir(sub) and not os.path.islink(sub):
                    shutil.rmtree(sub, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.remove(sub)
        else:
            shutil.rmtree(path, ignore_errors=True)
        raise


def private_dirs(path: str, subs: tuple[str, ...]) -> None:
    """Create sub-folders of `path` readable by the owner only (logs, pickup and work hold
    module sources, messages and the HAProxy socket), whatever the umask."""
    for sub in subs:
        folder = os.path.join(path, sub)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)


def private_sqlite_file(database: str) -> None:
    """Create the SQLite ODB file owner-only (0600) before SQLite opens it; SQLite gives its
    -wal and -shm files the database file's mode."""
    fd = os.open(database, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(database, 0o600)


def tls_names(*hosts: str) -> list[str]:
    """What a quickstart's certificates name: this host's local names and `hosts` (not 0.0.0.0)."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    return names + [h for h in dict.fromkeys(hosts) if h and h not in names and h not in ("0.0.0.0", "::")]


def create_server_dir(path: str, spec: ServerSpec, tls_ca: CA | None = None, ca_file: str = "") -> str:
    """Write a server directory (config, logs, pickup, work). Returns its absolute path. With
    `tls_ca`: its port serves HTTPS with a certificate that CA issues (config/server.pem), and
    peers are verified against `ca_file` (that CA's certificate)."""
    with new_dir(path) as path:
        pickup = ("pickup", os.path.join("pickup", "processed"), os.path.join("pickup", "incoming"))
        incoming = tuple(os.path.join("pickup", "incoming", sub) for sub in ("services", "user-conf"))
        private_dirs(path, ("config", "logs", *pickup, *incoming, "pickup-dir", "work"))  # Zato's folders too
        private_dirs(
            path, (os.path.normpath(os.path.join(path, spec.user_conf_dir)),)
        )  # may hold secrets too
        conf: dict[str, Mapping[str, object]] = {
            "main": {
                "name": spec.name,
                "host": spec.host,
                **({"announce_host": spec.announce_host} if spec.announce_host else {}),
                "port": spec.port,
                "workers": spec.workers,
                "drain_seconds": "1.0",
                **({"user_conf_dir": spec.user_conf_dir} if spec.user_conf_dir != USER_CONF_DIR else {}),
            },
            "cluster": {"name": spec.cluster},
            "odb": {"url": spec.odb_url},
            "kvdb": kvdb_section(spec.redis_url, spec.sentinels, spec.sentinel_master),
            "auth": {
                "admin_username": spec.admin_username,
                "admin_password": spec.admin_password or new_secret(),
                "cluster_secret": spec.cluster_secret or new_secret(),
                "invoke_username": INVOKE_USERNAME,
                "invoke_password": spec.invoke_password or new_secret(),
            },
            "logging": {"level": "INFO"},
        }
        if spec.metrics_password:
            conf["metrics"] = {"username": spec.metrics_username, "password": spec.metrics_password}
        if tls_ca is not None:
            from zato.common import tls  # cryptography is imported only when TLS is asked for

            cert, key = tls.issue(tls_ca, spec.name, tls_names(spec.host, spec.announce_host))
            tls.write_bundle(os.path.join(path, "config", SERVER_BUNDLE), cert, key, [tls_ca.cert])
            conf["tls"] = {"cert": SERVER_BUNDLE, "ca_file": os.path.abspath(ca_file)}
        write_conf(path, SERVER_CONF, conf)
        component.write_marker(path, component.SERVER)
        load_server_settings(path)  # what we wrote must load
    return path


def create_lb_dir(
    path: str,
    cluster: str,
    redis_url: str = DEFAULT_REDIS,
    port: int = DEFAULT_LB_PORT,
    kvdb: dict | None = None,  # the whole [kvdb] section (e.g. with sentinels), else just redis_url
    host: str = "127.0.0.1",  # the frontend's bind address (0.0.0.0: every interface)
    tls_ca: CA | None = None,  # terminate TLS with a certificate this CA issues (config/lb.pem)
    cluster_secret: str = "",  # the servers' [auth] cluster_secret: only members signed with it get traffic
    servers_ca_file: str = "",  # the servers serve TLS: verify them against this CA file
) -> str:
    with new_dir(path) as path:
        private_dirs(path, ("config", "logs", "work"))
        conf: dict[str, Mapping[str, object]] = {
            "main": {"host": host, "port": port},
            "cluster": {"name": cluster},
            "kvdb": kvdb or {"url": redis_url},
            "stats": {"username": "admin", "password": new_secret()},
            "auth": {"cluster_secret": cluster_secret or new_secret()},
            "logging": {"level": "INFO"},
        }
        if tls_ca is not None:
            from zato.common import tls  # cryptography is imported only when TLS is asked for

            cert, key = tls.issue(tls_ca, "localhost", tls_names(host))
            tls.write_bundle(os.path.join(path, "config", LB_BUNDLE), cert, key, [tls_ca.cert])
            conf["tls"] = {"cert": LB_BUNDLE}
        if servers_ca_file:
            conf["tls"] = {**conf.get("tls", {}), "ca_file": os.path.abspath(servers_ca_file)}
        write_conf(path, LB_CONF, conf)
        component.write_marker(path, component.LOAD_BALANCER)
        load_lb_settings(path)
    return path


def create_dashboard_dir(
    path: str, server: ServerSettings, lb_dir: str = "", port: int = DEFAULT_DASHBOARD_PORT
) -> str:
    """A dashboard directory for the cluster of `server` (its ODB, Redis and admin credentials)."""
    with new_dir(path) as path:
        private_dirs(path, ("config", "logs"))  # its config holds the admin password, its log user names
        redis = server.redis
        conf: dict[str, Mapping[str, object]] = {
            "main": {"host": "127.0.0.1", "port": port},
            "cluster": {"name": server.cluster},
            "odb": {"url": server.odb_url},
            "kvdb": kvdb_section(
                redis.url, ",".join(f"{h}:{p}" for h, p in redis.sentinels), redis.sentinel_master
            ),
            "auth": {
                "admin_username": server.admin_username,
                "admin_password": server.admin_password,
                "cluster_secret": server.cluster_secret,
            },
            "lb": {"dir": os.path.abspath(lb_dir) if lb_dir else ""},
            "logging": {"level": "INFO"},
        }
        if server.metrics_password:  # its scrapes of the servers' /metrics (requests/s) send them
            conf["metrics"] = {"username": server.metrics_username, "password": server.metrics_password}
        if server.tls_ca_file:  # the server's private CA of TLS AMQP brokers: Replay parked reaches them too
            conf["tls"] = {"ca_file": os.path.abspath(server.tls_ca_file)}
        write_conf(path, DASHBOARD_CONF, conf)
        component.write_marker(path, component.DASHBOARD)
        load_dashboard_settings(path)
    return path


def create_odb(url: str, cluster: str | None = None) -> bool:
    """Create the schema (idempotent) and the cluster row if named; True if the cluster is new."""
    odb = ODB(url)
    try:
        database = odb.engine.url.database
        if odb.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            folder = os.path.dirname(os.path.abspath(database))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise ODBError(f"cannot create {folder} for the SQLite ODB: {e.strerror}") from None
            private_sqlite_file(database)
        create_schema(odb.engine)
        return odb_api.ensure_cluster(odb, cluster) if cluster else False
    except ODBError as e:
        raise ODBError(str(e).splitlines()[0]) from None
    finally:
        odb.dispose()


def register_server(url: str, spec: ServerSpec) -> None:
    """The server's row in the ODB. An ODB with no cluster yet (docs/multi-host.md's `zato create
    cluster` step left out) said 'ODB error: (sqlite3.OperationalError) no such table:
    zato_cluster' (and made an empty SQLite file), or 'cluster ... does not exist in the ODB'."""
    odb = ODB(url)
    make_it = f"make it first: zato create cluster ODB_URL {spec.cluster}"
    try:
        database = odb.engine.url.database
        sqlite_file = odb.engine.dialect.name == "sqlite" and database and database != ":memory:"
        if sqlite_file and not os.path.exists(database or ""):
            raise ODBError(f"the ODB at {redact(url)} does not exist yet (no file {database}): {make_it}")
        check_odb(odb.engine)
        if not odb_api.has_schema(odb.engine):
            raise ODBError(f"the ODB at {redact(url)} holds no cluster yet (no Zato tables): {make_it}")
        try:
            odb_api.check_cluster(odb.engine, spec.cluster, "--cluster")
        except ODBError as e:
            raise ODBError(f"{e}; {make_it}") from None
        odb_api.add_server(odb, spec.cluster, spec.name, spec.announced_host, spec.port)
    finally:
        odb.dispose()


@dataclass(frozen=True)
class QuickstartSpec:
    path: str
    servers: int = 2
    odb_url: str = ""  # default: SQLite at DIR/odb.db
    redis_url: str = DEFAULT_REDIS
    cluster: str = "quickstart"
    base_port: int = DEFAULT_SERVER_PORT
    lb_port: int = DEFAULT_LB_PORT
    workers: int = 2
    sentinels: str = ""
    sentinel_master: str = ""
    # a private CA in DIR/tls; the LB terminates TLS with its certificate, each server serves
    # HTTPS with its own, and every client of a server verifies it against the CA
    tls: bool = False
    dashboard_port: int = DEFAULT_DASHBOARD_PORT


def create_quickstart(q: QuickstartSpec) -> list[str]:
    """Write DIR/server1..N, DIR/load-balancer, DIR/dashboard and the ODB. Returns the member
    paths. The directories come first, each config checked as it is written, and the ODB last:
    a value one of them refuses leaves no cluster or server row in an ODB given with --odb, and
    a failure removes what was made in DIR (new_dir)."""
    with new_dir(q.path) as root:
        made, specs = _write_quickstart(root, q)
        odb_url = specs[0].odb_url
        create_odb(odb_url, q.cluster)
        for spec in specs:
            register_server(odb_url, spec)
        component.write_marker(root, component.QUICKSTART)
    return made


def _write_quickstart(root: str, q: QuickstartSpec) -> tuple[list[str], list[ServerSpec]]:
    odb_url = q.odb_url or f"sqlite:///{os.path.join(root, 'odb.db')}"
    admin_password, secret, invoke_password = new_secret(), new_secret(), new_secret()
    made, specs = [], []
    ca, ca_file = None, ""
    if q.tls:  # the CA first: each server gets a certificate of its own
        from zato.common import tls

        ca = tls.new_ca(f"Zato cluster {q.cluster} CA")
        ca_file, _ = tls.write_ca(os.path.join(root, TLS_DIR), ca)
    for i in range(1, q.servers + 1):
        spec = ServerSpec(
            name=f"server{i}",
            cluster=q.cluster,
            odb_url=odb_url,
            redis_url=q.redis_url,
            sentinels=q.sentinels,
            sentinel_master=q.sentinel_master,
            port=q.base_port + i - 1,
            workers=q.workers,
            admin_password=admin_password,
            cluster_secret=secret,
            invoke_password=invoke_password,
            user_conf_dir=os.path.join(os.pardir, QUICKSTART_USER_CONF),
        )
        made.append(create_server_dir(os.path.join(root, spec.name), spec, ca, ca_file))
        specs.append(spec)
    kvdb = kvdb_section(q.redis_url, q.sentinels, q.sentinel_master)
    lb_dir = os.path.join(root, "load-balancer")
    lb = create_lb_dir(
        lb_dir,
        q.cluster,
        q.redis_url,
        q.lb_port,
        kvdb,
        tls_ca=ca,
        cluster_secret=secret,
        servers_ca_file=ca_file,
    )
    made.append(lb)
    made.append(
        create_dashboard_dir(
            os.path.join(root, "dashboard"), load_server_settings(made[0]), lb_dir, q.dashboard_port
        )
    )
    return made, specs
