"""`zato quickstart create DIR`: a whole cluster (servers, load balancer, ODB) in one folder."""

from __future__ import annotations

import argparse
import os

from zato.cli.args import STDIN_HELP, check_cluster, check_redis, described, urls_from_stdin
from zato.common.errors import ConfigError
from zato.coord.keys import Keys
from zato.lifecycle.layout import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_LB_PORT,
    DEFAULT_REDIS,
    DEFAULT_SERVER_PORT,
    QUICKSTART_USER_CONF,
    QuickstartSpec,
    create_quickstart,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="create a quickstart cluster")
    qs = p.add_subparsers(dest="action", metavar="ACTION")
    qs.required = True
    c = qs.add_parser(
        "create",
        help="create DIR with N servers, a load balancer and the ODB",
        **described(
            "Create a whole cluster on this host in DIR, each component in a folder of its own:"
            " --servers servers (server1, server2, ... on --base-port and the ports after it), a"
            " load balancer (HAProxy, on --lb-port), a dashboard (on --dashboard-port), the ODB"
            " (SQLite in DIR/odb.db unless --odb) and the cluster's credentials. DIR must be new or"
            " empty; a value refused leaves nothing behind. Nothing is started: zato start DIR.",
            "zato quickstart create ~/qs",
            "zato quickstart create ~/qs2 --cluster qs2 --base-port 18010 --lb-port 11224"
            " --dashboard-port 8184",
            "echo 'postgresql://zato:PASSWORD@db1/zato' | zato quickstart create ~/qs --odb -",
        ),
    )
    c.add_argument("path", metavar="DIR", help="an empty or new directory")
    c.add_argument("--servers", type=int, default=2, help="how many servers (default 2)")
    c.add_argument("--odb", default="", help=f"ODB URL (default: SQLite at DIR/odb.db){STDIN_HELP}")
    c.add_argument("--redis", default="", help=f"Redis URL (default {DEFAULT_REDIS}){STDIN_HELP}")
    c.add_argument(
        "--sentinels",
        default="",
        metavar="HOST:PORT,...",
        help="find the Redis master through these Sentinels (instead of --redis)",
    )
    c.add_argument("--sentinel-master", default="", metavar="NAME", help="the master's name in Sentinel")
    c.add_argument("--cluster", default="quickstart", help="cluster name (default quickstart)")
    c.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_SERVER_PORT,
        help=f"first server's port (default {DEFAULT_SERVER_PORT})",
    )
    c.add_argument(
        "--lb-port", type=int, default=DEFAULT_LB_PORT, help=f"load balancer port (default {DEFAULT_LB_PORT})"
    )
    c.add_argument("--workers", type=int, default=2, help="gunicorn workers per server (default 2)")
    c.add_argument(
        "--tls",
        action="store_true",
        help="create a private CA in DIR/tls (trust DIR/tls/ca.pem in clients) and have the load "
        "balancer serve HTTPS (HTTP/2 or HTTP/1.1) with a certificate it issued",
    )
    c.add_argument(
        "--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT, help="dashboard port (default 8183)"
    )
    # Zato 3.2's form, `zato quickstart create DIR sqlite localhost 6379 --kvdb_password ''
    # --verbose`: taken only to say this command's form (not in --help)
    c.add_argument("zato3", nargs="*", help=argparse.SUPPRESS)
    c.add_argument("--kvdb_password", default=None, help=argparse.SUPPRESS)
    c.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    c.set_defaults(func=create)


def create(args: argparse.Namespace) -> int:
    if args.zato3 or args.kvdb_password is not None:
        raise ConfigError(zato3_form(args.path, args.zato3))
    if not 1 <= args.servers <= 64:
        raise ConfigError(f"--servers {args.servers}: must be 1..64")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers {args.workers}: must be 1..64")
    check_ports(args.base_port, args.servers, args.lb_port, args.dashboard_port)
    urls_from_stdin(args, ("odb", "--odb"), ("redis", "--redis"))
    sentinels = check_sentinels(args.sentinels, args.sentinel_master)
    if sentinels and args.redis:
        raise ConfigError("give --redis URL or --sentinels HOST:PORT,... (the master they name), not both")
    args.redis = args.redis or DEFAULT_REDIS
    check_redis("--redis", args.redis)
    check_cluster("--cluster", args.cluster)
    spec = QuickstartSpec(
        os.path.abspath(args.path),
        args.servers,
        args.odb,
        args.redis,
        args.cluster,
        args.base_port,
        args.lb_port,
        args.workers,
        sentinels,
        args.sentinel_master,
        dashboard_port=args.dashboard_port,
        tls=args.tls,
    )
    made = create_quickstart(spec)
    print(f"Created quickstart cluster {args.cluster!r} in {spec.path}:")
    for path in made:
        print(f"  {os.path.relpath(path, spec.path)}")
    last = args.base_port + args.servers - 1
    if sentinels:
        print(f"  Redis: master {args.sentinel_master!r} found through Sentinel at {sentinels}")
    print(f"  servers on ports {args.base_port}..{last}, load balancer on {args.lb_port}")
    if args.tls:
        ca = os.path.join(spec.path, "tls", "ca.pem")
        print(f"  TLS: https://localhost:{args.lb_port}/ (trust {ca}, e.g. curl --cacert {ca})")
    print(f"  dashboard on http://127.0.0.1:{args.dashboard_port}/ (log in with the admin API credentials)")
    user_conf = os.path.join(spec.path, QUICKSTART_USER_CONF)
    print(
        f"  your services' settings (self.config.FILE...): *.ini files in {user_conf}, read by every server"
    )
    conf = os.path.join(spec.path, "server1", "config", "server.conf")
    print(f"  admin API and admin.invoke (Zato's invoke endpoints) credentials: {conf} [auth]")
    if "@" not in args.redis.partition("//")[2]:
        rules = " ".join(f"'{r}'" if r[0] in "~&>" else r for r in Keys(args.cluster).acl_rules())
        print("  Redis: no user or password in the URL; give the cluster its own (docs/redis-acl.md):")
        print(f"    redis-cli ACL SETUSER zato-{args.cluster} on '>PASSWORD' {rules}")
        url = f"{acl_url_scheme(args.redis)}://zato-{args.cluster}:PASSWORD@HOST:PORT/{redis_db(args.redis)}"
        print(f"    then [kvdb] url = {url} in every server.conf, lb.conf and dashboard.conf")
    print(f"Start it with:  zato start {spec.path}")
    print(f"Stop it with:   zato stop {spec.path}")
    return 0


def check_ports(base: int, servers: int, lb: int, dashboard: int) -> None:
    """ConfigError, before anything is written, for a port out of range or taken twice: a
    --lb-port or --dashboard-port among the servers' (--base-port and the next --servers - 1),
    or the two the same. Before, such a quickstart was made, and each `zato start` of it started
    its servers, failed on the load balancer's port and stopped them again."""
    last = base + servers - 1
    if base < 1 or last > 65535:
        raise ConfigError(f"--base-port {base}: not a usable port for {servers} server(s) (up to 65535)")
    for flag, port in (("--lb-port", lb), ("--dashboard-port", dashboard)):
        if not 1 <= port <= 65535:
            raise ConfigError(f"{flag} {port}: not a usable port (1..65535)")
        if base <= port <= last:
            raise ConfigError(
                f"{flag} {port} is server{port - base + 1}'s port (--base-port {base} with --servers"
                f" {servers}: {base}..{last}); give one outside that range"
            )
    if lb == dashboard:
        raise ConfigError(
            f"--dashboard-port {dashboard} is the load balancer's too (--lb-port); give another"
        )


def acl_url_scheme(url: str) -> str:
    """redis or rediss, as the user gave it."""
    return "rediss" if url.lower().startswith("rediss://") else "redis"


def redis_db(url: str) -> str:
    """The database number of a Redis URL (its path, or ?db=N), 0 when it gives none."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    db = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return db if db.isdigit() else "0"


def check_sentinels(sentinels: str, master: str) -> str:
    """--sentinels normalised to host:port,host:port; ConfigError naming the bad part."""
    items = [item.strip() for item in sentinels.split(",") if item.strip()]
    for item in items:
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"--sentinels: {item!r} is not host:port")
    if items and not master:
        raise ConfigError("--sentinel-master NAME is required with --sentinels")
    if master and not items:
        raise ConfigError("--sentinel-master needs --sentinels HOST:PORT,...")
    return ",".join(items)


def zato3_form(path: str, extra: list[str]) -> str:
    """What to type instead of Zato 3.2's `quickstart create DIR ODB_TYPE KVDB_HOST KVDB_PORT`."""
    odb, host, port = ([*extra, "", "", ""])[:3]
    redis = f"redis://{host or '127.0.0.1'}:{port or '6379'}/0"
    said = f"{' '.join(extra)!r} is" if extra else "--kvdb_password is"
    return (
        f"{said} Zato 3.2's form of this command; here: zato quickstart create {path} --redis {redis}"
        f"{' --odb URL (postgresql://USER:PASSWORD@HOST/DB)' if odb and odb != 'sqlite' else ''}"
        " (SQLite in DIR is the default ODB; a Redis password goes in the URL: --redis - reads it"
        " from stdin); zato quickstart create --help says the rest"
    )
