"""`zato channel create|list|delete DIR ...`: HTTP channels (URL path -> service)."""

from __future__ import annotations

import argparse

import redis

from zato.cli.args import described
from zato.cli.conn import warn_unknown_service, with_cluster
from zato.common.errors import ConfigError
from zato.lifecycle.control import cluster_settings
from zato.odb import api as odb_api
from zato.odb.engine import ODB
from zato.service import channels


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("channel", help="create, list or delete HTTP channels")
    act = p.add_subparsers(dest="action", metavar="ACTION")
    act.required = True
    c = act.add_parser(
        "create",
        help="create or replace an HTTP channel",
        **described(
            "Create an HTTP channel: a request to --url-path (through the load balancer, or to any"
            " server) invokes --service and gets its response. Every server takes it at once; a"
            " channel of that --name is replaced.",
            "zato channel create DIR --name hello --url-path /hello --service hello-api.hello --method POST",
            "zato channel create DIR --name client --url-path /crm/clients/{client_id}"
            " --service crm.client.get --method GET --security crm-users",
        ),
    )
    c.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    c.add_argument(
        "--name", required=True, help="its name (letters, digits, _ . -); an existing one is replaced"
    )
    c.add_argument(
        "--url-path",
        required=True,
        help="e.g. /api/clients/{client_id}: a {param} is one path segment, given to the service as input",
    )
    c.add_argument("--service", required=True, help="the service it invokes")
    c.add_argument("--method", help="HTTP method (default: any); a GET channel also answers HEAD")
    c.add_argument(
        "--data-format",
        default="json",
        choices=odb_api.DATA_FORMATS,
        help="json: the body is parsed as JSON (malformed: 400); text: passed as text (default: json)",
    )
    c.add_argument("--inactive", action="store_true", help="create it switched off")
    c.add_argument(
        "--max-body",
        metavar="BYTES",
        help="largest request body, else 413 (default: server.conf [limits] max_body)",
    )
    c.add_argument(
        "--security",
        metavar="NAME",
        help="a security definition its callers must satisfy (HTTP Basic Auth or an API key, made with"
        " zato conn create security); without it the channel is open to anyone who reaches it",
    )
    c.add_argument(
        "--open",
        action="store_true",
        help="replace a secured channel with an open one (without it, leaving out --security is refused)",
    )
    c.set_defaults(func=create)
    ls = act.add_parser(
        "list",
        help="list HTTP channels",
        **described(
            "List the cluster's HTTP channels, a line each: NAME: METHOD (any: every method) URL_PATH"
            " -> SERVICE [DATA_FORMAT], then security=NAME or open, and (inactive) for one switched off.",
            "zato channel list DIR",
        ),
    )
    ls.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    ls.set_defaults(func=list_)
    d = act.add_parser(
        "delete",
        help="delete an HTTP channel",
        **described(
            "Delete an HTTP channel from every server at once: its URL path answers 404. The service it"
            " invoked stays deployed.",
            "zato channel delete DIR --name hello",
        ),
    )
    d.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    d.add_argument("--name", required=True, help="the channel's name")
    d.set_defaults(func=delete)


def _change(args: argparse.Namespace, apply) -> object:  # noqa: ANN001
    return with_cluster(cluster_settings(args.path), apply)


def create(args: argparse.Namespace) -> int:
    if args.open and args.security:
        raise ConfigError("give --security NAME or --open, not both")
    ch = odb_api.make_channel(
        args.name,
        args.url_path,
        args.service,
        args.method,
        args.data_format,
        not args.inactive,
        args.max_body,
        args.security,
    )

    def save(odb: ODB, client: redis.Redis, cluster: str) -> bool:
        saved = channels.save(odb, client, cluster, ch, opening=args.open)
        warn_unknown_service(odb, cluster, ch.service, "requests to it")
        return saved

    created = _change(args, save)
    print(
        f"channel {ch.name} {'created' if created else 'updated'}: {ch.method or 'any'} {ch.url_path} "
        f"-> {ch.service}{f' (security: {ch.security})' if ch.security else ''}"
    )
    return 0


def delete(args: argparse.Namespace) -> int:
    if not _change(args, lambda odb, client, cluster: channels.delete(odb, client, cluster, args.name)):
        raise ConfigError(f"no channel named {args.name!r}")
    print(f"channel {args.name} deleted")
    return 0


def list_(args: argparse.Namespace) -> int:
    settings = cluster_settings(args.path)
    odb = ODB(settings.odb_url)
    try:
        channels = odb_api.list_channels(odb, settings.cluster)
    finally:
        odb.dispose()
    for ch in channels:
        state = "" if ch.is_active else "  (inactive)"
        secured = f" security={ch.security}" if ch.security else " open"
        route = f"{ch.method or 'any'} {ch.url_path} -> {ch.service}"
        print(f"{ch.name}: {route} [{ch.data_format}]{secured}{state}")
    if not channels:  # as conn list: an empty answer says so (it printed nothing)
        print("no HTTP channels")
    return 0
