"""`zato cluster status DIR [--json]`: servers, the connector-server lease and its connectors.
`zato cluster forget DIR SERVER`, `zato cluster run-parked DIR`: see their --help.

DIR is a quickstart folder or any server folder of the cluster. Reads Redis (and the ODB for
servers that are not running); never shows a secret.

Exit codes, for scripts: 0 all is well; 1 the cluster could not be read (Redis unreachable or
refusing, DIR not a cluster's folder); 3 it was read and something is wrong, each thing said
on a `problem:` line (no live server, connectors defined but no lease holder to run them, a
connector FATAL, a connector reconnecting for the holder's [lease] handover_after or more (the
holder cannot reach its broker or queue manager; it hands the lease to another live server then,
zato.connector.handover, so this stays a problem when none is left that might reach it), a
connector RUNNING but silent (zato.coord.status.SILENT), a live server a load balancer's HAProxy
marks DOWN or MAINT (zato.coord.lb_view), the ODB unreachable, the quickstart's load balancer
not running or its HAProxy not answering, a Redis that may evict the cluster's keys:
zato.coord.eviction). A Redis whose maxmemory-policy
this user may not read is a `warning:` line saying how to check it by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from zato.common.errors import ComponentError, ZatoError
from zato.common.order import natural_key
from zato.config.component import LOAD_BALANCER, QUICKSTART, SERVER, quickstart_members, read_component
from zato.config.settings import LeaseSettings, ServerSettings, load_server_settings
from zato.coord import connector_stats, events, eviction, health, lb_view
from zato.coord.client import REFUSES_WRITES, connect, describe
from zato.coord.signing import member_key
from zato.coord.status import SILENT, KnownServer, collect

EXIT_UNREADABLE = 1  # the cluster could not be read: Redis unreachable (or DIR is no cluster's)
EXIT_PROBLEM = 3  # read, and something is wrong: the `problem:` lines say what
# Seconds a connector may be reconnecting before the status calls it a problem: the holder's
# [lease] handover_after, after which it hands the lease over (its supervisor publishes it with
# its status); this default for a holder that does not (an older version).
RECONNECTING_PROBLEM = LeaseSettings.handover_after
STATUS_EXIT_CODES = """exit codes:
  0  all is well
  1  the cluster could not be read (Redis unreachable or refusing; DIR is no cluster's folder)
  3  read, and something is wrong, each said on a "problem:" line: no live server,
     connectors defined but no lease holder running them, a connector FATAL, a connector
     reconnecting for the holder's [lease] handover_after (10 s by default) or more (its
     broker or queue manager out of the holder's reach),
     a connector its queue manager or AMQP broker refuses (not authorized, no such queue,
     a login or virtual host refused), a connector RUNNING but silent (no statistics
     written for 10 s: stopped or hung),
     a live server a load balancer's HAProxy marks DOWN or MAINT (it sends it nothing),
     the ODB unreachable, the load balancer (of a quickstart DIR) not running or its
     HAProxy not answering,
     a Redis that may evict the cluster's keys (a maxmemory and a maxmemory-policy
     other than noeviction)"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cluster", help="the cluster's status; forget a server; run parked invoke_async calls again"
    )
    csub = p.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    csub.required = True
    s = csub.add_parser(
        "status",
        help="servers, lease holder, epoch and connector processes",
        description="Servers (live or gone), the connector-server lease, its connectors and the\n"
        "load balancer of a quickstart.\n\n"
        "Each connector's row: IN and OUT, messages it took and sent since its process started;\n"
        "WAITING, an outgoing connection's messages yet to go out (its waiting and processing\n"
        "lists in Redis, as /metrics and the dashboard count them); PARKED-SINCE-START, what the\n"
        "process parked since it started (the dashboard's \"parked since start\", /metrics'\n"
        "zato_connector_parked_total): it starts again at 0 when the process restarts;\n"
        "PARKED-NOW, what waits parked now, whatever restarted meanwhile (the dashboard's\n"
        "\"parked now\"): an AMQP channel's parking queue (the broker's count,\n"
        "zato_channel_parking_queue), an outgoing connection's parked list in Redis (refused by\n"
        'its broker or queue manager, zato_outgoing_queue_depth{list="parked"}); - for kinds\n'
        "that park elsewhere (an IBM MQ channel's backout queue); BACKOUTS, an IBM MQ channel's\n"
        "gets backed out after a failed service call; RECONN, its reconnects.\n"
        "Under the table, a line for each connector with messages parked now, with the zato conn\n"
        "replay-parked command that puts them back once the cause is mended. An inactive outgoing\n"
        "connection with messages waiting, and parked invoke_async calls, have lines of their own.",
        epilog=STATUS_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("path", metavar="DIR", help="a quickstart directory or a server directory")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=run_status)
    f = csub.add_parser(
        "forget",
        help="remove a stopped server from the cluster's list (a server taken out for good)",
        description="Remove a server that is not running from the cluster's list in the ODB, so "
        "that zato cluster status and the dashboard stop showing it as gone. A live server is "
        "refused: stop it first. Its directory, if any, is left as it is.",
    )
    f.add_argument("path", metavar="DIR", help="a quickstart directory or a server directory of the cluster")
    f.add_argument("server", metavar="SERVER", help="the name of the server to forget")
    f.set_defaults(func=run_forget)
    r = csub.add_parser(
        "run-parked",
        help="queue the parked invoke_async calls again (workers died running them, or not signed)",
        description="An invoke_async call under which 3 workers died is parked, not run again "
        "(zato cluster status counts them). Once its service is mended, this puts every call parked "
        "now back on the queue, oldest first, as the dashboard's 'Run parked "
        "again' does. Each keeps its count: one that ends its worker again is parked after one more. "
        "A call not signed with the cluster's key (queued by a server of a version before calls were "
        "signed, during a rolling upgrade) is parked too, and parked again unless --sign.",
    )
    r.add_argument("path", metavar="DIR", help="a quickstart directory or a server directory of the cluster")
    r.add_argument(
        "--sign",
        action="store_true",
        help="also sign, with the cluster's key, the parked calls that are not signed with it (queued "
        "by a version before calls were signed, or under another cluster_secret, or written to Redis by "
        "someone else). Only once you checked they are the cluster's own: every one of them is run",
    )
    r.set_defaults(func=run_parked)


def _parked_outgoing_hint(c: dict, kind: str, name: str) -> str:
    from zato.connector.refusals import NOT_SIGNED  # here: the connector modules cost 27 ms to import

    said = f"  {c['name']}: {c['parked_now']} message(s) in its parked list in Redis"
    if NOT_SIGNED in str(c.get("last_error") or ""):
        # without --sign, the command the hint gave parked them again: during a rolling upgrade
        # these are what the servers not yet upgraded queued
        return (
            f"{said} (refused by its broker or queue manager, or {NOT_SIGNED}: queued by a server of a"
            " version before outgoing messages were signed, or written to Redis by someone else);"
            " once every server is upgraded and you know they are the cluster's own:"
            f" zato conn replay-parked {kind} DIR --name {name} --sign"
        )
    return (
        f"{said} (refused by its broker or queue manager, whatever restarted meanwhile);"
        f" once the cause is mended: zato conn replay-parked {kind} DIR --name {name}"
    )


def run_status(args: argparse.Namespace) -> int:
    data = gather(args.path)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(render(data))
    return exit_code(data)


def exit_code(data: dict) -> int:
    if any(e.startswith("Redis") for e in data["errors"]):
        return EXIT_UNREADABLE
    return EXIT_PROBLEM if data["problems"] else 0


def problems(data: dict) -> list[str]:
    """What is wrong in a cluster status that Redis answered (exit code 3), one line each."""
    out = []
    evicting = (data.get("redis_eviction") or {}).get("warning")
    if evicting:  # messages, the lease, nonces may go without an error (zato.coord.eviction)
        out.append(evicting)
    if data.get("redis_replica"):  # what it read is the master's copy, and changes through it are refused
        out.append(
            f"{data['redis_replica']}: what this shows is as its master last sent it, and each change"
            f" made through it (zato deploy, channel, conn) is refused; {health.REPLICA}"
        )
    if not any(s["live"] for s in data["servers"]) and all(s["live"] is False for s in data["servers"]):
        out.append("no live server")  # not while Redis, which says who is live, did not answer (live None)
    defined = data.get("connectors_defined") or []
    lease = data["lease"] or {}
    holder = lease.get("holder")
    if defined and not holder and lease.get("newest_epoch") is not None:  # None: Redis did not say
        out.append(f"{len(defined)} connector(s) defined but no server holds the lease to run them")
    fatal = [c["name"] for c in data["children"] if c.get("state") == "FATAL"]
    if fatal:
        out.append(f"connector(s) FATAL: {', '.join(fatal)}")
    out += _reconnecting(data, holder)
    for c in data["children"]:
        if c.get("state") == "RUNNING" and c.get("activity") == "refused":  # a configuration error
            out.append(
                f"connector {c['name']} on {holder} is refused by its {_refuser(c['name'])} (for"
                f" {c.get('activity_for') or 0} s), nothing is consumed or sent meanwhile:"
                f" {c.get('last_error') or 'no error said'}"
            )
    out += [
        f"connector {c['name']} on {holder} (pid {c.get('pid')}) is RUNNING but silent: it has written no"
        f" statistics for {connector_stats.TTL:g} s or more (stopped or hung?), so nothing may be consumed"
        f" or sent; {holder} kills and restarts it after its [main] connector_hang_after"
        for c in data["children"]
        if c.get("state") == "RUNNING" and c.get("activity") == SILENT
    ]
    if any(e.startswith("ODB") for e in data["errors"]):
        out.append("the ODB could not be read (the warning above says why)")
    lb = data.get("load_balancer")
    if lb is not None:
        if lb.get("error"):
            out.append(f"load balancer {lb.get('path')}: {lb['error']}")
        elif not (lb.get("controller") or {}).get("running") or not (lb.get("haproxy") or {}).get("running"):
            out.append(f"load balancer {lb.get('path')}: not running")
        elif lb["haproxy"].get("error"):  # hung, or its socket not this user's: what it serves is unknown
            out.append(f"load balancer {lb.get('path')}: HAProxy does not answer: {lb['haproxy']['error']}")
    views = data.get("load_balancers")
    if views is not None:  # what each live LB's HAProxy says, from any host: membership alone said live
        out += lb_view.not_serving(lb_view.Views(down=views["down"]), data["servers"])
    return out


def run_forget(args: argparse.Namespace) -> int:
    from zato.coord import membership
    from zato.lifecycle.control import cluster_settings
    from zato.odb import api as odb_api
    from zato.odb.engine import ODB

    settings = cluster_settings(args.path)
    cluster, name = settings.cluster, args.server
    client = connect(settings.redis, retry=Retry(NoBackoff(), 0))
    odb = ODB(settings.odb_url)
    try:
        key = member_key(settings.cluster_secret, cluster)
        if not membership.forget(
            client, cluster, key, name, lambda: odb_api.delete_server(odb, cluster, name)
        ):
            known = ", ".join(r.name for r in odb_api.list_servers(odb, cluster)) or "none"
            raise ComponentError(f"no server named {name!r} in cluster {cluster} (servers: {known})")
    finally:
        odb.dispose()
        client.close()
    print(f"server {name} forgotten: no longer listed in cluster {cluster}")
    return 0


def run_parked(args: argparse.Namespace) -> int:
    from zato.coord.async_invoke import requeue_parked, requeue_parked_signing
    from zato.coord.signing import call_key
    from zato.lifecycle.control import cluster_settings

    settings = cluster_settings(args.path)
    client = connect(settings.redis, retry=Retry(NoBackoff(), 0))
    now = ""
    try:
        if args.sign:
            key = call_key(settings.cluster_secret, settings.cluster)
            moved, signed = requeue_parked_signing(client, settings.cluster, key)  # all parked now
            now = f"; {signed} of them not signed with the cluster's key, signed now"
        else:
            moved = requeue_parked(client, settings.cluster)  # all parked now
    finally:
        client.close()
    print(f"invoke_async: {moved} parked call(s) of cluster {settings.cluster} queued again{now}")
    return 0


def gather(path: str) -> dict:
    component = read_component(path)
    if component.kind == QUICKSTART:
        members = quickstart_members(component)
        servers = [load_server_settings(m.path) for m in members if m.kind == SERVER]
        lbs = [m.path for m in members if m.kind == LOAD_BALANCER]
    elif component.kind == SERVER:
        servers, lbs = [load_server_settings(component.path)], []
    else:
        raise ComponentError(
            f"{component.path}: is a {component.kind}; give a quickstart or server directory"
        )
    if not servers:
        raise ComponentError(f"{component.path}: holds no server directory")
    first = servers[0]
    client = connect(first.redis, retry=Retry(NoBackoff(), 0))
    try:
        key = member_key(first.cluster_secret, first.cluster)
        # Each at the address it announces, as its membership and the ODB have it (not the
        # 0.0.0.0 it may bind), also when it is not live or Redis does not answer.
        known = [KnownServer(s.name, s.announced_host, s.port) for s in servers]
        data = collect(client, first.cluster, known, key=key, registered=lambda: _registered(first))
        data["redis_replica"] = events.replica(client, first.cluster) or None
        redis_read = not any(e.startswith("Redis") for e in data["errors"])
        found = _eviction(client) if redis_read else None  # not another wait for a Redis away
        data["load_balancers"] = _lb_views(client, first.cluster) if redis_read else None
    finally:
        client.close()
    data["redis"] = describe(first.redis)
    if found is not None:
        data["redis_eviction"] = {
            **found.as_dict(),
            "warning": eviction.warning(found, data["redis"]) or None,
            "unchecked": eviction.unchecked(found, data["redis"]) or None,
        }
    _add_waiting(data)
    data["user_config"] = _deployed_config(first, data["errors"])
    if data["user_config"] is not None:  # the ODB answered: which connectors it defines
        data["connectors_defined"] = _connectors_defined(first, data["errors"])
    if lbs:
        data["load_balancer"] = _lb(lbs[0])
    data["errors"] = list(dict.fromkeys(data["errors"]))  # an ODB that is down failed each read alike
    data["problems"] = problems(data)
    return data


def _lb_views(client: Redis, cluster: str) -> dict | None:
    """What each live load balancer reports in Redis (zato.coord.lb_view): the members it sends
    new requests to, and those its HAProxy marks DOWN or MAINT. None if it could not be read."""
    try:
        views = lb_view.read(client, cluster)
    except ZatoError:
        return None
    return {
        "live": {lb_id: sorted(names, key=natural_key) for lb_id, names in views.live.items()},
        "down": views.down,
        "stale": list(views.stale),
    }


def _eviction(client: Redis) -> eviction.Eviction | None:
    """Whether Redis may evict the cluster's keys; None when it did not answer (said already)."""
    try:
        return eviction.read(client)
    except ZatoError:
        return None


def _add_waiting(data: dict) -> None:
    """Each outgoing connector's `waiting`: its messages yet to go out (its Redis lists waiting
    and processing), and `parked_now`: its parked list, as zato_outgoing_queue_depth and the
    dashboard count them; a channel's `parked_now` is its parking queue. None where a number
    does not apply, or while the queues could not be read."""
    depths = data.get("outgoing_waiting")
    found = {f"{q['kind']}:{q['name']}": q for q in depths or ()}
    for c in data["children"]:
        if str(c.get("kind") or "").endswith("-outgoing") and depths is not None:
            q = found.get(str(c.get("name")), {})
            c["waiting"], c["parked_now"] = q.get("waiting", 0), q.get("parked", 0)
        else:
            c["waiting"], c["parked_now"] = None, c.get("parking_queue")


def _registered(settings: ServerSettings) -> list:
    """The servers of the cluster in its ODB (zato.odb.api.ServerRecord)."""
    from zato.odb import api as odb_api
    from zato.odb.engine import ODB

    odb = ODB(settings.odb_url)
    try:
        return odb_api.list_servers(odb, settings.cluster)
    except ZatoError as e:  # said as the other reads of the ODB say it, which ODB included
        raise ZatoError(_said(e)) from e
    finally:
        odb.dispose()


def _said(e: ZatoError) -> str:
    from zato.common.said import say

    return say(e)


def _from_odb(
    settings: ServerSettings, errors: list[str], read: Callable[[Any], list[str]]
) -> list[str] | None:
    """read(odb) with the cluster's ODB; None, and the reason in `errors`, if it did not say."""
    from zato.odb.engine import ODB

    odb = None
    try:
        odb = ODB(settings.odb_url)  # a URL it cannot use is said as an ODB that is down
        return read(odb)
    except ZatoError as e:
        errors.append(f"ODB: {_said(e)}")
        return None
    finally:
        if odb is not None:
            odb.dispose()


def _deployed_config(settings: ServerSettings, errors: list[str]) -> list[str] | None:
    """The names of the user-config files deployed to the cluster; None if the ODB did not say."""
    from zato.odb import api as odb_api

    return _from_odb(
        settings, errors, lambda odb: [f.name for f in odb_api.list_user_config(odb, settings.cluster)]
    )


def _connectors_defined(settings: ServerSettings, errors: list[str]) -> list[str] | None:
    """KIND:NAME of the cluster's active connector definitions; None if the ODB did not say."""
    from zato.odb.connectors import active_connector_names

    return _from_odb(settings, errors, lambda odb: active_connector_names(odb, settings.cluster))


def _lb(lb_dir: str) -> dict | None:
    try:
        from zato.lb.status import describe as describe_lb
    except ImportError:
        return None
    return describe_lb(lb_dir)


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def table(headers: tuple[str, ...], rows: list[tuple]) -> list[str]:
    cells = [headers] + [tuple("-" if v in (None, "") else str(v) for v in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def render(data: dict) -> str:
    out = [f"Cluster {data['cluster']} (Redis {data.get('redis', '?')})", ""]
    rows = [
        (
            s["name"],
            {True: "live", False: "gone"}.get(s["live"], "?"),
            s["address"],
            s["pid"],
            when(s["since"]),
            s["role"],
        )
        for s in data["servers"]
    ]
    out += table(("SERVER", "STATUS", "ADDRESS", "PID", "SINCE", "ROLE"), rows)
    lease = data["lease"] or {}
    out.append("")
    if lease.get("holder"):
        out.append(
            f"Lease: held by {lease['holder']}, epoch {lease['epoch']}, since {when(lease['since'])} "
            f"(newest epoch {lease['newest_epoch']})"
        )
        if data.get("supervisor"):  # its supervisor said its status (not yet just after a takeover)
            out.append(_handover_line(data["supervisor"].get("handover_after"), lease["holder"]))
        out.append("")
        children = data["children"]
        if children:
            out.append(f"Connectors on {lease['holder']}:")
            keys = (
                "name", "state", "pid", "restarts", "messages_in", "messages_out", "waiting", "parked",
                "parked_now", "backouts", "reconnects", "last_error",
            )  # fmt: skip
            out += table(
                ("NAME", "STATE", "PID", "RESTARTS", "IN", "OUT", "WAITING", "PARKED-SINCE-START")
                + ("PARKED-NOW", "BACKOUTS", "RECONN", "LAST ERROR"),
                [tuple(_state(c) if k == "state" else c.get(k) for k in keys) for c in children],
            )
            for c in children:  # the counter is the process's own; the queue outlives it
                kind, _, name = str(c["name"]).partition(":")
                if c.get("parking_queue"):
                    out.append(
                        f"  {c['name']}: {c['parking_queue']} message(s) in its parking queue"
                        " (the broker's count, whatever restarted meanwhile); once its service is"
                        f" mended: zato conn replay-parked {kind} DIR --name {name}"
                    )
                elif c.get("parked_now") and kind.endswith("-outgoing"):
                    out.append(_parked_outgoing_hint(c, kind, name))
        else:
            out.append(f"Connectors on {lease['holder']}: none")
        last_error = (data.get("supervisor") or {}).get("last_error")
        if last_error:
            out.append(f"Supervisor error: {last_error}")
    else:
        newest = lease.get("newest_epoch")
        refusing = any(REFUSES_WRITES in e for e in data["errors"])  # membership is read with scripts
        out.append(
            f"Lease: unknown (Redis {'refuses writes' if refusing else 'unreachable'}: see below)"
            if newest is None
            else f"Lease: not held (newest epoch {newest})"
        )
    deployed = data.get("user_config")
    if deployed is not None:
        out += [
            "",
            f"User config deployed to the cluster (self.config.NAME): {', '.join(deployed) or 'none'}",
        ]
    out += _inactive_waiting(data)
    calls = data.get("async")
    if calls:
        out += ["", f"invoke_async: {calls['queued']} queued, {calls['parked']} parked"]
        if calls["parked"]:
            out.append(
                f"  parked calls (workers died while running them, or not signed with the cluster's key: "
                f"queued by a server of an older version) are kept in {calls['parked_key']}; "
                "zato cluster run-parked DIR [--sign]"
            )
    lb = data.get("load_balancer")
    if lb:
        out += ["", *render_lb(lb)]
    for error in data["errors"]:
        out.append(f"warning: {error}")
    unchecked = (data.get("redis_eviction") or {}).get("unchecked")
    if unchecked:
        out.append(f"warning: {unchecked}")
    out += [f"problem: {p}" for p in data.get("problems", [])]
    return "\n".join(out)


def _inactive_waiting(data: dict) -> list[str]:
    """A line for each inactive outgoing connection with messages waiting in Redis: its
    connector is stopped, so they go out only once it is made active again."""
    active = data.get("connectors_defined")
    if active is None:  # the ODB did not say which are active
        return []
    lines = [
        f"  {q['kind']}:{q['name']}: {q['waiting']} message(s) waiting; the connection is inactive"
        f" (they go out once it is active again: zato conn edit {q['kind']} DIR --name {q['name']}"
        " --active true)"
        for q in data.get("outgoing_waiting", [])
        if q["waiting"] and f"{q['kind']}:{q['name']}" not in active
    ]
    return ["", "Inactive outgoing connections:", *lines] if lines else []


def _handover_line(after: float | None, holder: str) -> str:
    """When the holder hands the lease over: its own [lease] handover_after (each server has its
    own; the holder's is the one in force), as its supervisor published it (None: it did not)."""
    if not after:
        return (
            f"Hand-over: {holder} does not say its [lease] handover_after"
            f" ({RECONNECTING_PROBLEM:g} s, the default, assumed)"
        )
    return (
        f"Hand-over: after a connector reconnects {after:g} s in a row (the holder {holder}'s"
        " [lease] handover_after; each server has its own)"
    )


def _reconnecting(data: dict, holder: str | None) -> list[str]:
    """A problem line for each connector reconnecting for the holder's [lease] handover_after
    or more (RECONNECTING_PROBLEM when the holder does not publish it), naming the setting."""
    after = (data.get("supervisor") or {}).get("handover_after")
    threshold = after or RECONNECTING_PROBLEM
    setting = (
        f"[lease] handover_after of {holder}: {after:g} s"
        if after
        else f"{holder} does not say its [lease] handover_after: {threshold:g} s, the default, assumed"
    )
    return [
        f"connector {c['name']} on {holder} has been reconnecting for {c['activity_for']} s"
        f" ({setting}), nothing is consumed or sent meanwhile: {c.get('last_error') or 'no error said'}"
        for c in data["children"]
        if c.get("activity") == "reconnecting" and (c.get("activity_for") or 0) >= threshold
    ]


def _refuser(connector: str) -> str:
    """Who refuses a connector in state refused: an AMQP one's broker, an IBM MQ one's queue manager."""
    return "AMQP broker" if connector.startswith("amqp-") else "queue manager"


def _state(child: dict) -> str:
    """The supervisor's state of a connector, and what it says it is doing when that is not
    plain work: RUNNING/reconnecting while its broker or queue manager is away, RUNNING/blocked
    while the broker blocks its publishes (a RabbitMQ resource alarm), RUNNING/refused while
    the queue manager or AMQP broker refuses what it needs (not authorized, no such queue, a
    login or virtual host: a configuration error, tried again less and less often), RUNNING/silent
    while it writes no statistics (stopped or hung: zato.coord.status.SILENT)."""
    state, activity = child.get("state"), child.get("activity")
    shown = state == "RUNNING" and activity in ("reconnecting", "blocked", "refused", SILENT)
    if not shown:
        return str(state)
    took = child.get("activity_for")
    return f"{state}/{activity} {took} s" if took else f"{state}/{activity}"


def render_lb(lb: dict) -> list[str]:
    if lb.get("error"):
        return [f"Load balancer: {lb.get('path')}: {lb['error']}"]
    running = (lb.get("controller") or {}).get("running")
    out = [f"Load balancer: {lb.get('url')} ({'running' if running else 'not running'})"]
    if (lb.get("haproxy") or {}).get("error"):  # before, an empty table: as if it had no server
        out.append(f"  HAProxy does not answer: {lb['haproxy']['error']}")
    rows = [(s.get("name"), s.get("address"), s.get("state"), s.get("check")) for s in lb.get("servers", [])]
    if rows:
        out += ["  " + line for line in table(("BACKEND", "ADDRESS", "STATE", "CHECK"), rows)]
    return out
