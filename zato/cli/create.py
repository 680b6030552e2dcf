"""`zato create odb|cluster|server|load-balancer ...`: build a cluster by hand."""

from __future__ import annotations

import argparse
import os

from zato.cli.args import STDIN_HELP, check_cluster, check_redis, described, urls_from_stdin
from zato.common.errors import ComponentError, ConfigError
from zato.config import component
from zato.config.settings import WILDCARDS, ServerSettings
from zato.lifecycle.control import cluster_settings
from zato.lifecycle.layout import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_LB_PORT,
    DEFAULT_REDIS,
    DEFAULT_SERVER_PORT,
    ServerSpec,
    create_dashboard_dir,
    create_lb_dir,
    create_odb,
    create_server_dir,
    kvdb_section,
    new_dir,
    register_server,
)

ODB_URL_HELP = (
    "an SQLAlchemy URL, e.g. sqlite:////ABSOLUTE/PATH/odb.db or postgresql://USER:PASSWORD@HOST:5432/DB;"
    " - reads it from stdin (not seen in ps or shell history)"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("create", help="create an ODB, a cluster, a server, a load balancer or a dashboard")
    what = p.add_subparsers(dest="what", metavar="WHAT")
    what.required = True

    o = what.add_parser(
        "odb",
        help="create the ODB schema (idempotent)",
        **described(
            "Create the ODB's tables in the database ODB_URL names; run again, it changes nothing."
            " A PostgreSQL or Oracle database must exist already; a SQLite file is made. Then: zato"
            " create cluster ODB_URL NAME.",
            "zato create odb sqlite:////srv/zato/odb.db",
            "echo 'postgresql://zato:PASSWORD@db1:5432/zato' | zato create odb -",
        ),
    )
    o.add_argument("odb_url", metavar="ODB_URL", help=ODB_URL_HELP)
    o.set_defaults(func=odb)

    c = what.add_parser(
        "cluster",
        help="add a cluster to an ODB",
        **described(
            "Add the cluster NAME to the ODB (its tables are made first when missing); one that"
            " exists is left as it is. Then its servers: zato create server DIR --odb ODB_URL"
            " --cluster NAME.",
            "zato create cluster sqlite:////srv/zato/odb.db prod",
        ),
    )
    c.add_argument("odb_url", metavar="ODB_URL", help=ODB_URL_HELP)
    c.add_argument(
        "name", metavar="NAME", help="the cluster's name (its servers' Redis keys start zato:NAME:)"
    )
    c.set_defaults(func=cluster)

    s = what.add_parser(
        "server",
        help="create a server directory and register it in the ODB",
        **described(
            "Create DIR as a server of the cluster --cluster in the ODB --odb, or of the cluster of"
            " --join SERVER_DIR (with its ODB, Redis and credentials), and register it in the ODB"
            " under --name. Nothing is started: zato start DIR.",
            "zato create server /srv/zato/server3 --join /srv/zato/server1 --port 17012",
            "zato create server /srv/zato/server1 --odb - --cluster prod --host 0.0.0.0"
            " --announce-host 10.0.0.11",
        ),
    )
    s.add_argument("path", metavar="DIR", help="a new or empty directory for the server")
    s.add_argument(
        "--join",
        metavar="SERVER_DIR",
        help="copy cluster, ODB, Redis and credentials from an existing server "
        "(a quickstart directory: its first)",
    )
    s.add_argument("--odb", help="ODB URL" + STDIN_HELP)
    s.add_argument("--cluster", help="cluster name")
    s.add_argument("--redis", help=f"Redis URL (default {DEFAULT_REDIS}){STDIN_HELP}")
    s.add_argument("--name", help="server name (default: the directory's name)")
    s.add_argument(
        "--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface; default 127.0.0.1)"
    )
    s.add_argument(
        "--announce-host",
        default="",
        metavar="ADDR",
        help="address the LB and the other servers reach this server at (default: --host; "
        "required with --host 0.0.0.0)",
    )
    s.add_argument(
        "--port", type=int, default=DEFAULT_SERVER_PORT, help=f"port (default {DEFAULT_SERVER_PORT})"
    )
    s.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    s.set_defaults(func=server)

    lb = what.add_parser(
        "load-balancer",
        help="create a load-balancer directory",
        **described(
            "Create DIR as a load balancer (HAProxy, run by its controller) of the cluster: it sends"
            " requests to the cluster's live servers, as their membership in Redis says. With --join"
            " it takes the cluster secret that verifies them too; without it, set [auth]"
            " cluster_secret in its config/lb.conf. Nothing is started: zato start DIR.",
            "zato create load-balancer /srv/zato/lb --join /srv/zato/server1 --host 0.0.0.0",
        ),
    )
    lb.add_argument("path", metavar="DIR", help="a new or empty directory for the load balancer")
    lb.add_argument(
        "--join",
        metavar="SERVER_DIR",
        help="take cluster, Redis and the cluster secret (which verifies the servers) from a server "
        "(a quickstart directory: its first)",
    )
    lb.add_argument("--cluster", help="cluster name (required without --join)")
    lb.add_argument("--redis", default=None, help=f"Redis URL (default {DEFAULT_REDIS}){STDIN_HELP}")
    lb.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0: every interface; default 127.0.0.1)",
    )
    lb.add_argument("--port", type=int, default=DEFAULT_LB_PORT, help=f"port (default {DEFAULT_LB_PORT})")
    lb.set_defaults(func=load_balancer)

    d = what.add_parser(
        "dashboard",
        help="create a dashboard directory (web UI on port 8183) for the cluster of a server",
        description="The dashboard reads the cluster's ODB and Redis and logs users in with the "
        "cluster's admin credentials, all taken from SERVER_DIR's server.conf.",
    )
    d.add_argument("path", metavar="DIR", help="a new or empty directory for the dashboard")
    d.add_argument(
        "--server",
        required=True,
        metavar="SERVER_DIR",
        help="a server of the cluster (or its quickstart directory)",
    )
    d.add_argument("--lb", default="", metavar="LB_DIR", help="the load balancer's directory on this host")
    d.add_argument(
        "--port", type=int, default=DEFAULT_DASHBOARD_PORT, help=f"port (default {DEFAULT_DASHBOARD_PORT})"
    )
    d.set_defaults(func=dashboard)


def odb(args: argparse.Namespace) -> int:
    urls_from_stdin(args, ("odb_url", "ODB_URL"))
    create_odb(args.odb_url)
    print("ODB schema ready")
    return 0


def cluster(args: argparse.Namespace) -> int:
    check_cluster("cluster name", args.name)
    urls_from_stdin(args, ("odb_url", "ODB_URL"))
    created = create_odb(args.odb_url, args.name)
    print(f"cluster {args.name} {'created' if created else 'already exists'}")
    return 0


def server(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: not a usable port")
    name = args.name or os.path.basename(os.path.abspath(args.path))
    urls_from_stdin(args, ("odb", "--odb"), ("redis", "--redis"))
    _check_names(args)
    if args.join:
        base = _server_of(args.join, "--join")
        spec = ServerSpec(
            name,
            args.cluster or base.cluster,
            args.odb or base.odb_url,
            args.redis or base.redis.url,
            args.host,
            args.port,
            args.workers,
            base.admin_username,
            base.admin_password,
            base.cluster_secret,
            # joining also means the same Sentinels, unless --redis names another Redis
            "" if args.redis else _sentinels(base),
            "" if args.redis else base.redis.sentinel_master,
            args.announce_host,
            base.invoke_password,
            # one scrape config (and the dashboard's [metrics]) for every server of the cluster
            metrics_username=base.metrics_username,
            metrics_password=base.metrics_password,
        )
    else:
        if not args.odb or not args.cluster:
            raise ConfigError("zato create server needs --odb and --cluster (or --join SERVER_DIR)")
        spec = ServerSpec(
            name,
            args.cluster,
            args.odb,
            args.redis or DEFAULT_REDIS,
            args.host,
            args.port,
            args.workers,
            announce_host=args.announce_host,
        )
    if args.host in WILDCARDS and not args.announce_host:
        raise ConfigError(
            f"--host {args.host} binds every interface: say where peers reach it with --announce-host ADDR"
        )
    # the directory first (its config checked as written), then the ODB row: a value the config
    # refuses leaves no row behind, and a row the ODB refuses no directory
    with new_dir(args.path) as path:
        create_server_dir(path, spec)
        register_server(spec.odb_url, spec)
    print(f"server {name} of cluster {spec.cluster} created in {path} (port {spec.port})")
    print(f"Start it with:  zato start {path}")
    return 0


def load_balancer(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: not a usable port")
    urls_from_stdin(args, ("redis", "--redis"))
    _check_names(args)
    if args.join:
        base = _server_of(args.join, "--join")
        redis = base.redis
        kvdb = None if args.redis else kvdb_section(redis.url, _sentinels(base), redis.sentinel_master)
        cluster, secret = args.cluster or base.cluster, base.cluster_secret
    elif not args.cluster:
        raise ConfigError("zato create load-balancer needs --cluster (or --join SERVER_DIR)")
    else:
        cluster, secret, kvdb = args.cluster, "", None
    path = create_lb_dir(
        args.path,
        cluster,
        args.redis or DEFAULT_REDIS,
        args.port,
        kvdb,
        host=args.host,
        cluster_secret=secret,
    )
    print(f"load balancer of cluster {cluster} created in {path} ({args.host}:{args.port})")
    if not secret:
        print("Set [auth] cluster_secret in its config/lb.conf to the servers' [auth] cluster_secret:")
        print("the load balancer sends traffic only to servers whose membership it can verify.")
    return 0


def dashboard(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: not a usable port")
    server = _server_of(args.server, "--server")
    if args.lb:  # a wrong directory is one clear line now, not a blank page later
        try:
            lb = component.read_component(args.lb)
        except ComponentError as e:
            raise ComponentError(f"--lb {e}") from None
        if lb.kind != component.LOAD_BALANCER:
            raise ConfigError(f"--lb {lb.path}: a {lb.kind} directory; give a load-balancer directory")
    path = create_dashboard_dir(args.path, server, args.lb, args.port)
    print(f"dashboard created in {path}: http://127.0.0.1:{args.port}/")
    print(f"Start it with:  zato start {path}")
    return 0


def _sentinels(settings: ServerSettings) -> str:
    return ",".join(f"{h}:{p}" for h, p in settings.redis.sentinels)


def _check_names(args: argparse.Namespace) -> None:
    """--cluster and --redis, before a directory or an ODB row is made."""
    if args.cluster is not None:
        check_cluster("--cluster", args.cluster)
    if args.redis is not None:
        check_redis("--redis", args.redis)


def _server_of(path: str, flag: str) -> ServerSettings:
    """The settings of the server (or a quickstart's first server) that --join or --server names."""
    try:
        comp = component.read_component(path)
    except ComponentError as e:
        raise ComponentError(f"{flag} {e}") from None
    if comp.kind not in (component.SERVER, component.QUICKSTART):
        raise ConfigError(
            f"{flag} {comp.path}: a {comp.kind} directory; give a server directory (or a quickstart's)"
        )
    return cluster_settings(comp.path)
