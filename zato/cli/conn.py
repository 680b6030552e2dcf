"""`zato conn create|edit|delete|list`: AMQP, IBM MQ, ZeroMQ, outgoing HTTP and SQL connection
definitions, and the security definitions HTTP channels are guarded by; `zato conn
replay-parked`: an AMQP channel's parked messages back on its queue (zato.connector.amqp_replay).

    zato conn create amqp-def DIR --name rabbit --host 127.0.0.1 --password -   (- reads stdin)
    zato conn create amqp-channel DIR --name orders --def rabbit --queue orders --service my.svc
    zato conn edit amqp-channel DIR --name orders --prefetch 50
    zato conn delete amqp-channel DIR --name orders
    zato conn list DIR [--kind amqp-channel]
    zato conn replay-parked amqp-channel DIR --name orders [--limit 100]
    zato conn create http-outgoing DIR --name crm --address http://crm:8080 --url-path /clients/{id}
    zato conn create sql-outgoing DIR --name crm-db --url postgresql://crm@db/crm --password -
    zato conn create security DIR --name crm-users --type basic_auth --username crm --password -

DIR is a server or quickstart directory (its ODB and Redis are used). Changes apply live.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from zato.cli.args import described, wait_seconds
from zato.common.errors import ConfigError, ConnectorError, ZatoError
from zato.config import component
from zato.config.settings import (
    ServerSettings,
    load_dashboard_settings,
    load_lb_settings,
    load_server_settings,
)
from zato.connector import applied, definitions
from zato.coord.client import connect
from zato.coord.signing import outgoing_key
from zato.lifecycle.control import cluster_settings
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.engine import ODB


def _option(field: connectors.Field) -> str:
    return "--active" if field.name == "is_active" else "--" + field.name.replace("_", "-")


# What each kind is, for --help
KIND_HELP = {
    "amqp-def": "an AMQP broker definition (address, credentials)",
    "amqp-channel": "an AMQP channel (a queue consumed into a service)",
    "amqp-outgoing": "an outgoing AMQP connection (services publish through it)",
    "ibm-mq-def": "an IBM MQ queue manager definition",
    "ibm-mq-channel": "an IBM MQ channel (a queue consumed into a service)",
    "ibm-mq-outgoing": "an outgoing IBM MQ connection (services put messages through it)",
    "zmq-channel": "a ZeroMQ channel (a socket whose messages go to a service)",
    "zmq-outgoing": "an outgoing ZeroMQ connection",
    "http-outgoing": "an outgoing HTTP connection",
    "sql-outgoing": "an outgoing SQL connection",
    "security": "a security definition (HTTP Basic Auth or an API key) for HTTP channels' callers",
}


# What each option means, for --help: by (kind, field), else by field. Defaults are added.
FIELD_HELP: dict[tuple[str | None, str], str] = {
    (None, "name"): "its name (letters, digits, _ . -)",
    ("http-outgoing", "name"): "its name, as services give it (self.out.rest['Customer API']): letters, "
    "digits, spaces, _ . -",
    ("sql-outgoing", "name"): "its name, as services give it (self.out.sql['Orders DB']): letters, "
    "digits, spaces, _ . -",
    (None, "host"): "the broker's host name or address",
    (None, "port"): "the broker's port",
    (None, "vhost"): "the AMQP virtual host",
    (None, "username"): "the user to log in as",
    ("amqp-def", "heartbeat"): "seconds between AMQP heartbeats; a vanished holder's unacked messages go "
    "back to the queue after about two missed",
    ("ibm-mq-def", "heartbeat"): "seconds between MQ channel heartbeats (HeartbeatInterval)",
    ("amqp-def", "handshake_timeout"): "seconds a connection has to get through TCP, TLS and the AMQP "
    "handshake; a port that takes it and never answers (a hung broker) fails after this, and is tried again",
    (None, "use_tls"): "connect with TLS (verified against server.conf [tls] ca_file)",
    ("amqp-channel", "def"): "the amqp-def it connects through",
    ("amqp-outgoing", "def"): "the amqp-def it connects through",
    ("ibm-mq-channel", "def"): "the ibm-mq-def it connects through",
    ("ibm-mq-outgoing", "def"): "the ibm-mq-def it connects through",
    ("amqp-channel", "queue"): "the queue to consume (declared durable if it does not exist)",
    ("ibm-mq-channel", "queue"): "the queue to get messages from",
    ("ibm-mq-outgoing", "queue"): "the queue messages are put to (a send may name another)",
    (None, "service"): "the service each message invokes",
    (None, "prefetch"): "messages the broker delivers ahead of acknowledgements",
    (None, "data_format"): "json: a body that is not JSON is parked as poison; text: any body",
    (
        "ibm-mq-channel",
        "data_format",
    ): "json: a body that is not JSON goes to the backout queue; text: any body",
    ("zmq-channel", "data_format"): "json: a body that is not JSON is logged and dropped; text: any body",
    ("http-outgoing", "data_format"): "json: a dict or list is sent as JSON; text: data as given",
    (None, "max_deliveries"): "deliveries of a failing message before it is parked in QUEUE.zato-parked",
    (None, "max_in_flight"): "invocations of the service running at once",
    (None, "is_active"): "false: kept, but not running and not usable by services",
    (None, "exchange"): "the exchange messages are published to ('' is the default exchange; a send may "
    "name another)",
    (None, "routing_key"): "the routing key (a send may give another)",
    (None, "delivery_mode"): "1 transient, 2 persistent (a send may give another)",
    (None, "content_type"): "the content type of the messages (a send may give another; with"
    " application/json, text that is not JSON goes as text/plain, bytes as application/octet-stream)",
    (None, "queue_manager"): "the queue manager's name",
    (None, "channel"): "the server-connection channel (SVRCONN)",
    (None, "conn_name"): "host(port); several, comma-separated, for a multi-instance queue manager",
    (None, "cipher_spec"): "the TLS CipherSpec, e.g. TLS_AES_256_GCM_SHA384 (with --key-repository)",
    (None, "key_repository"): "the key repository's path without its extension, e.g. /var/mqm/ssl/key",
    (None, "backout_threshold"): "backouts after which a message goes to the backout queue",
    (None, "backout_queue"): "where messages that keep failing go",
    (None, "convert"): "true: the queue manager converts text (MQFMT_STRING) to UTF-8 on each get "
    "(MQGMO_CONVERT)",
    (None, "persistence"): "persistent, non-persistent, or queue (the queue's own default)",
    (None, "expiry"): "seconds a message lives on the queue",
    (None, "priority"): "0 to 9",
    ("zmq-channel", "address"): "@tcp://HOST:PORT binds, >tcp://HOST:PORT connects (bare: binds); several, "
    "comma-separated",
    ("zmq-outgoing", "address"): "@tcp://HOST:PORT binds, >tcp://HOST:PORT connects (bare: connects)",
    (None, "socket_type"): "the ZeroMQ socket type",
    (None, "sub_prefix"): "SUB only: the topic prefix subscribed to (stripped from one-frame messages)",
    ("http-outgoing", "address"): "scheme, host and port, e.g. http://crm:8080",
    ("http-outgoing", "url_path"): "the path; its {params} are filled from a call's params",
    (None, "timeout"): "seconds a call may take",
    ("amqp-channel", "timeout"): "seconds the connector waits for the service's answer; a service slower than"
    " that counts as a failed delivery (parked after max_deliveries)",
    ("ibm-mq-channel", "timeout"): "seconds the connector waits for the service's answer; a service slower"
    " than that counts as a failed delivery: backed out (to the backout queue at the threshold)",
    ("zmq-channel", "timeout"): "seconds the connector waits for the service's answer; a service slower than"
    " that counts as a failed attempt: tried again, logged after 5",
    (None, "url"): "an SQLAlchemy URL without the password, e.g. postgresql://crm@db:5432/crm",
    (None, "pool_size"): "connections each server worker keeps open",
    (None, "password"): "- reads it from stdin (not seen in ps or shell history); at a terminal it is"
    " asked for",
    ("security", "type"): "basic_auth: callers send HTTP Basic Auth; apikey: callers send a key in a header",
    ("security", "username"): "basic_auth: the user name callers must send",
    ("security", "realm"): "basic_auth: the realm named in the 401's WWW-Authenticate",
    ("security", "header"): "apikey: the header that carries the key",
    ("security", "is_active"): "false: kept, but every request to the channels that use it is refused",
    ("security", "password"): "basic_auth: the password; apikey: the key. - reads it from stdin (not seen"
    " in ps or shell history; at a terminal it is asked for); kept as a salted hash",
}


def _field_help(kind: str, name: str, action: str) -> str | None:
    text = FIELD_HELP.get((kind, name)) or FIELD_HELP.get((None, name))
    default = _default_text(kind, name) if action == "create" and name != "password" else None
    return "; ".join(t for t in (text, default) if t) or None


def _default_text(kind: str, name: str) -> str | None:
    """'default: ...' for --help, from the ODB model's column default (None: no default)."""
    if (kind, name) in connectors.MEANING:
        return f"default: {connectors.MEANING[kind, name][1]}"
    column = connectors.MODELS[kind].__table__.columns.get(name)
    value = getattr(getattr(column, "default", None), "arg", None)
    if value is None or value == "" or callable(value):
        return None
    return f"default: {str(value).lower() if isinstance(value, bool) else value}"


def _add_kind_parsers(act: argparse._SubParsersAction, action: str, func) -> None:  # noqa: ANN001
    p = act.add_parser(action, help=f"{action} a connection definition")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for kind, fields in connectors.FIELDS.items():
        about = KIND_HELP.get(kind, kind)
        keep = " Options not given keep their values." if action == "edit" else ""
        k = kinds.add_parser(
            kind, help=f"{action} {about}", description=f"{action.capitalize()} {about}.{keep}"
        )
        k.add_argument("path", metavar="DIR", help="a server or quickstart directory")
        for f in fields:
            if f.name == "name":
                k.add_argument("--name", required=True, help=_field_help(kind, "name", action))
                continue
            if action == "delete":
                continue
            hint = "true|false" if f.type == "bool" else "|".join(f.choices) if f.choices else None
            k.add_argument(
                _option(f),
                dest=f.name,
                metavar=hint or f.name.upper().replace("_", "-"),
                help=_field_help(kind, f.name, action),
            )
        if action == "edit":
            k.add_argument("--new-name", help="rename it")
        if action == "edit" and kind in connectors.CONNECTOR_KINDS + tuple(connectors.DEF_KEYS):
            what = (
                "every active connector that connects through it (each is restarted)"
                if kind in connectors.DEF_KEYS
                else "the connector"
            )
            k.add_argument(
                "--wait",
                type=wait_seconds,
                metavar="SECONDS",
                help=f"wait (at most SECONDS, up to 3600) until the lease holder runs {what} with"
                " the change, connected (or bound), and say how long that took; exit 1 if it does"
                " not within SECONDS",
            )
        if action == "delete" and kind.endswith("-outgoing"):
            k.add_argument(
                "--force",
                action="store_true",
                help="delete it even while messages services sent through it have yet to go out"
                " (they stay in Redis for a connection made again under this name)",
            )
        k.set_defaults(func=func)


def add_parser(sub: argparse._SubParsersAction) -> None:
    what = "AMQP, IBM MQ, ZeroMQ, outgoing HTTP and SQL connections, and channels' security definitions"
    p = sub.add_parser("conn", help=f"create, edit, delete or list {what}; put parked messages back")
    act = p.add_subparsers(dest="action", metavar="ACTION")
    act.required = True
    _add_kind_parsers(act, "create", create)
    _add_kind_parsers(act, "edit", edit)
    _add_kind_parsers(act, "delete", delete)
    ls = act.add_parser(
        "list",
        help="list connection definitions (passwords masked)",
        **described(
            "List the cluster's connection definitions (AMQP, IBM MQ, ZeroMQ, outgoing HTTP and SQL)"
            " and channels' security definitions, a line each with its settings; passwords and keys"
            " are masked.",
            "zato conn list DIR --kind amqp-channel",
        ),
    )
    ls.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    ls.add_argument(
        "--kind",
        choices=connectors.KINDS,
        metavar="KIND",
        help="only this kind: " + ", ".join(connectors.KINDS),
    )
    ls.set_defaults(func=list_)
    replay = act.add_parser(
        "replay-parked",
        help="put an AMQP channel's parked messages back on its queue, or an outgoing connection's "
        "behind those waiting to go out (once the cause is mended)",
        description="Put the messages an AMQP channel parked in QUEUE.zato-parked (failed max-deliveries"
        " times, refused as bad input, rejected by the service, not JSON) back on QUEUE, for its service"
        " to run again: each with its body and properties, its delivery count started again; its parked"
        " copy is acked only once the broker confirmed the new one. At most the messages parked when it"
        " starts are taken (one parked again meanwhile waits for the next replay). Prints how many were"
        " moved and how many are left; exit code 1 with the reason if the broker failed or refused."
        " For an outgoing connection (amqp-outgoing, ibm-mq-outgoing), the messages its broker or queue"
        " manager refused, parked in Redis, go back behind those waiting to go out (all at once: no"
        " --limit).",
    )
    replay.add_argument(
        "kind",
        metavar="KIND",
        choices=("amqp-channel", "amqp-outgoing", "ibm-mq-outgoing"),
        help="amqp-channel: its parking queue on the broker back to its queue; amqp-outgoing,"
        " ibm-mq-outgoing: the messages the broker or queue manager refused (parked in Redis) back"
        " behind those waiting to go out, as the dashboard's Re-send parked",
    )
    replay.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    replay.add_argument("--name", required=True, help="the channel's or outgoing connection's name")
    replay.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="move at most N messages, the oldest first (default: all that are parked when it starts)",
    )
    replay.add_argument(
        "--sign",
        action="store_true",
        help="amqp-outgoing, ibm-mq-outgoing: also sign, with the cluster's key, the parked messages"
        " that are not signed with it (its connector parks those: queued by a version before outgoing"
        " messages were signed, or under another cluster_secret, or written to Redis by someone else;"
        " without --sign they are parked again). Only once you checked they are the cluster's own:"
        " whatever is parked is published (docs/trust.md)",
    )
    replay.set_defaults(func=replay_parked)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return value


def _read_secret(args: argparse.Namespace, field: str) -> str:
    """A `-` value: the first line of stdin. Typed at a terminal, it is asked for, unechoed (the
    README's `--password -` typed as shown sat there silently, as if the command hung). A stdin
    that ends before a line (empty: a pipe whose writer failed, </dev/null) is refused: taken
    as an empty password, it was saved and every connection was refused later."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:  # an empty line ("\n") is an empty value given on purpose
            raise ZatoError(
                f"no {field} given for {args.kind} {args.name}: stdin ended before a line was read"
                f" (--{field.replace('_', '-')} - reads its first line): nothing changed"
            )
        return line.rstrip("\n")
    try:
        return getpass.getpass(f"{field} of {args.kind} {args.name} (not shown; Enter ends it): ")
    except EOFError:  # Ctrl-D at the prompt
        raise ZatoError(f"no {field} given for {args.kind} {args.name}: nothing changed") from None


def _values(args: argparse.Namespace) -> dict:
    values = {}
    for f in connectors.FIELDS[args.kind]:
        value = getattr(args, f.name, None)
        if value is None or f.name == "name":
            continue
        if f.secret and value == "-":
            value = _read_secret(args, f.name)
        values[f.name] = value
    return values


T = TypeVar("T")


def with_cluster(settings: ServerSettings, apply: Callable[[ODB, redis.Redis, str], T]) -> T:
    """apply(odb, redis client, cluster name) on the cluster of `settings`; both closed after."""
    odb, client = ODB(settings.odb_url), connect(settings.redis)
    try:
        return apply(odb, client, settings.cluster)
    finally:
        odb.dispose()
        client.close()


def report(result: Any) -> int:
    """Print a deploy's or undeploy's one line, and its warnings on stderr."""
    print(result.describe())
    for warning in result.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace, apply: Callable[[ODB, redis.Redis, str], T]) -> T:
    return with_cluster(cluster_settings(args.path), apply)


def cluster_ports(path: str) -> dict[int, str]:
    """The ports of the quickstart `path` is (or is a server of): its servers', load balancer's
    and dashboard's, which no ZeroMQ socket may bind (the ODB knows only the servers')."""
    comp = component.read_component(path)
    if comp.kind != component.QUICKSTART:
        parent = os.path.dirname(os.path.abspath(comp.path))
        if not os.path.isfile(os.path.join(parent, component.MARKER)):
            return {}
        comp = component.read_component(parent)
        if comp.kind != component.QUICKSTART:
            return {}
    loaders: dict[str, Callable[[str], Any]] = {
        component.SERVER: load_server_settings,
        component.LOAD_BALANCER: load_lb_settings,
        component.DASHBOARD: load_dashboard_settings,
    }
    ports = {}
    for member in component.quickstart_members(comp):
        with contextlib.suppress(ZatoError, OSError):  # a member that cannot be read reserves nothing
            port = loaders[member.kind](member.path).port
            ports[port] = f"{member.kind} {os.path.basename(member.path)}"
    return ports


def create(args: argparse.Namespace) -> int:
    values = {"name": args.name, **_values(args)}
    view = _run(
        args,
        lambda odb, client, cluster: _saved(
            odb,
            cluster,
            values,
            definitions.create(odb, client, cluster, args.kind, values, cluster_ports(args.path), _warn),
        ),
    )
    print("created " + definitions.describe(view))
    return 0


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _saved(odb: ODB, cluster: str, values: dict, view: T) -> T:
    """`view`, after a warning on stderr if the definition names a service no server has."""
    warn_unknown_service(odb, cluster, values.get("service"), "its messages")
    return view


def warn_unknown_service(odb: ODB, cluster: str, service: str | None, what: str) -> None:
    warning = odb_api.unknown_service(odb, cluster, service, what)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


Expected = applied.Expect | tuple[applied.Expect, ...] | None  # what --wait waits for


def edit(args: argparse.Namespace) -> int:
    values = _values(args)
    if args.new_name:
        values["name"] = args.new_name
    if not values:
        raise ConnectorError(f"nothing to change in {args.kind} {args.name!r}: give at least one option")

    wait = getattr(args, "wait", None)

    def apply(odb: ODB, client: redis.Redis, cluster: str) -> tuple[dict, str, Expected]:
        ports = cluster_ports(args.path)
        # with --wait: what ran before (the holder's status) and whether the edit changes anything
        before = applied.before_edit(odb, client, cluster, args.kind, args.name) if wait else None
        users = _def_users(odb, cluster, args.kind, args.name) if wait else []
        view = definitions.edit(odb, client, cluster, args.kind, args.name, values, ports, _warn)
        expect: Expected = None
        if before and args.kind in connectors.DEF_KEYS:
            expect = applied.Expect.of_def_edit(args.kind, view, values, before, users)
        elif before:
            expect = applied.Expect.of_edit(args.kind, args.name, view, values, before)
        return _saved(odb, cluster, values, view), definitions.inactive_note(client, cluster, view), expect

    view, note, expect = _run(args, apply)
    print("updated " + definitions.describe(view))
    if note:
        print(f"warning: {note}", file=sys.stderr)
    if wait is None:
        return 0
    if expect is None:
        users = "the connectors that connect through " if args.kind in connectors.DEF_KEYS else ""
        print(f"nothing changed: the lease holder runs {users}{args.kind} {view['name']!r} as before")
        return 0
    if expect == ():
        print(f"nothing to wait for: no active connector connects through {args.kind} {view['name']!r}")
        return 0
    return _wait_applied(args, expect, wait)


def _def_users(odb: ODB, cluster: str, kind: str, name: str) -> list[str]:
    """The active connectors an edit of definition `kind` `name` restarts (none for other kinds)."""
    return connectors.active_users_of_def(odb, cluster, kind, name) if kind in connectors.DEF_KEYS else []


def _wait_applied(
    args: argparse.Namespace, expect: applied.Expect | tuple[applied.Expect, ...], timeout: float
) -> int:
    """`zato conn edit --wait`: until the lease holder runs the edited connector (zato.connector.applied)."""

    def waited(_odb: ODB, client: redis.Redis, cluster: str) -> tuple[str | None, str, float]:
        return applied.wait(client, cluster, expect, timeout)

    how, said, seconds = _run(args, waited)
    if how is None:
        late = f"the change is saved, but not applied within {timeout:g} s: {said}"
        print(f"zato: error: {late}", file=sys.stderr)
        return 1
    print(f"applied in {seconds:.2f} s: {how}")
    return 0


def delete(args: argparse.Namespace) -> int:
    force = bool(getattr(args, "force", False))
    gone = _run(
        args,
        lambda odb, client, cluster: definitions.delete(
            odb, client, cluster, args.kind, args.name, force, _warn
        ),
    )
    print(f"deleted {args.kind} {args.name}")
    if gone.left:
        print(
            f"warning: {gone.left} message(s) sent through it stay in Redis; they go out once a"
            f" {args.kind} named {args.name} is made again",
            file=sys.stderr,
        )
    if gone.dropped:
        print(
            f"warning: {gone.dropped} message(s) its connectors had received and handed over, not"
            " processed, were dropped with it",
            file=sys.stderr,
        )
    return 0


def list_(args: argparse.Namespace) -> int:
    settings = cluster_settings(args.path)
    odb = ODB(settings.odb_url)
    try:
        views = connectors.list_all(odb, settings.cluster, args.kind)
    finally:
        odb.dispose()
    for view in views:
        print(definitions.describe(view))
    if not views:
        print(f"no {args.kind} definitions" if args.kind else "no connection definitions")
    return 0


def replay_parked(args: argparse.Namespace) -> int:
    from zato.connector import amqp_replay

    settings = cluster_settings(args.path)
    if args.kind != amqp_replay.KIND:
        if args.limit is not None:
            raise ConfigError(f"--limit: {args.kind} puts back all its parked messages at once")
        key = outgoing_key(settings.cluster_secret, settings.cluster) if args.sign else None

        def resend(odb: ODB, client: redis.Redis, cluster: str) -> tuple[int, int]:
            return definitions.resend_parked_signing(odb, client, cluster, args.kind, args.name, key)

        moved, signed = with_cluster(settings, resend)
        now = f"; {signed} of them not signed with the cluster's key, signed now" if args.sign else ""
        print(
            f"{args.kind} {args.name}: {moved} parked message(s) queued again, behind those waiting to go out"
            + now
        )
        return 0
    if args.sign:
        raise ConfigError(f"--sign: {args.kind}'s parked messages are on the broker, not signed")
    odb = ODB(settings.odb_url)
    try:
        result = amqp_replay.replay_channel(
            odb, settings.cluster, args.name, settings.tls_ca_file, args.limit
        )
    finally:
        odb.dispose()
    return report(result)
