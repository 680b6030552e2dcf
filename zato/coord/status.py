"""The cluster status view: servers (live or gone), the lease holder and its connectors.

Built here only, by collect(): `zato cluster status`, GET /zato/admin/cluster/status, the
dashboard and the cluster metrics of /metrics all call it, so they show the same servers in
the same states. Read-only, and never shows a secret (the lease token is not part of it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import redis

from zato.common.errors import CoordError, ZatoError
from zato.common.order import natural_key
from zato.coord import connector_stats, membership, parse, queues
from zato.coord.client import translate
from zato.coord.events import PROBE_TTL_MS
from zato.coord.health import what_to_do
from zato.coord.keys import Keys
from zato.coord.lease import current_epoch, read_holder, read_supervisor_status


class Known(Protocol):
    """A server the cluster knows of, live or not: a KnownServer or an ODB server record."""

    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class KnownServer:
    """A server the cluster knows of (from the ODB or a server directory), live or not."""

    name: str
    host: str
    port: int


def collect(
    client: redis.Redis,
    cluster: str,
    known: Iterable[Known] = (),
    key: bytes | None = None,
    registered: Callable[[], Iterable[Known]] | None = None,
) -> dict:
    """Everything the status view shows; Redis failures become an "errors" entry.

    Servers: the live members, and those the cluster knows of that are not live (state
    "gone"): `known` (say, this host's server directories), then what `registered()` lists
    (the ODB's servers, zato.odb.api.list_servers) that `known` lacks. A ZatoError from
    registered() becomes an "ODB: ..." entry of errors, after Redis's, and the rest is shown.
    `key`: `signing.member_key`; members whose entries do not verify are not shown. Without
    it (a view that has no cluster secret) entries are only parsed strictly."""
    servers, odb_error = _known(known, registered)
    result = _collect(client, cluster, servers, key)
    if odb_error:
        result["errors"].append(odb_error)
    return result


def _known(known: Iterable[Known], registered: Callable[[], Iterable[Known]] | None) -> tuple[list, str]:
    rows = {k.name: KnownServer(k.name, k.host, k.port) for k in known}
    if registered is None:
        return list(rows.values()), ""
    try:
        listed = list(registered())
    except ZatoError as e:
        return list(rows.values()), f"ODB: {e}"
    for k in listed:
        rows.setdefault(k.name, KnownServer(k.name, k.host, k.port))
    return list(rows.values()), ""


def _redis_error(error: CoordError, cluster: str) -> str:
    """An "errors" entry for Redis: what failed and what mends it (zato.coord.health.what_to_do),
    the same words the components' own logs use."""
    return f"Redis: {error}; {what_to_do(error, cluster=cluster)}"


def _collect(client: redis.Redis, cluster: str, known: list[KnownServer], key: bytes | None) -> dict:
    result: dict = {"cluster": cluster, "servers": [], "lease": None, "children": [], "errors": []}
    try:
        live = {m.name: m for m in membership.live_servers(client, cluster, key)}
        holder = read_holder(client, cluster)
        newest = current_epoch(client, cluster)
        supervisor = read_supervisor_status(client, cluster)
        result["async"] = _async_calls(client, cluster)
    except CoordError as e:
        result["errors"].append(_redis_error(e, cluster))
        live, holder, newest, supervisor = None, None, None, None
    if live is not None:  # Redis answered: the outgoing queues with messages waiting
        try:
            result["outgoing_waiting"] = _outgoing_waiting(client, cluster)
        except CoordError as e:
            result["errors"].append(_redis_error(e, cluster))
    result["servers"] = _servers(live, known, holder.server if holder else None)
    result["lease"] = {
        "holder": holder.server if holder else None,
        "epoch": holder.epoch if holder else None,
        "since": holder.since if holder else None,
        "expires_in_ms": holder.ttl_ms if holder else None,
        "newest_epoch": newest,
    }
    if holder and supervisor and supervisor.get("epoch") == holder.epoch:
        children = supervisor.get("children", [])
        try:
            stats = connector_stats.read(client, cluster, [c.get("name") for c in children])
        except CoordError as e:
            result["errors"].append(_redis_error(e, cluster))
            stats = {}
        result["children"] = [_child(c, stats.get(c.get("name"), {})) for c in children]
        result["supervisor"] = {
            "server": supervisor.get("server"),
            "pid": supervisor.get("pid"),
            "updated_at": supervisor.get("updated_at"),
            "last_error": supervisor.get("last_error") or "",
            "handover_after": _handover_after(supervisor),
        }
    return result


def _handover_after(supervisor: dict) -> float | None:
    """The holder's [lease] handover_after, as its supervisor published it; None from one that
    does not (an older version) or a value that is no number of seconds."""
    try:
        value = parse.number(supervisor.get("handover_after"), "handover_after")
    except parse.BadEntry:
        return None
    return value if value > 0 else None


def _async_calls(client: redis.Redis, cluster: str) -> dict:
    """invoke_async: calls waiting in the queue, and calls parked because workers died under them."""
    keys = Keys(cluster)
    with translate("invoke_async queues"):
        queued, parked = client.llen(keys.async_queue), client.llen(keys.async_parked)
    return {"queued": queued, "parked": parked, "parked_key": keys.async_parked}


def _outgoing_waiting(client: redis.Redis, cluster: str) -> list[dict]:
    """Every listed outgoing queue (queues.registered: an inactive connection's too) that has
    messages yet to go out or parked: kind (amqp-outgoing, ibm-mq-outgoing), name, waiting
    (queued and being sent), parked (refused by the broker, kept for a human), as
    zato_outgoing_queue_depth counts them. Whether the connection is active is the ODB's to say
    (zato cluster status)."""
    listed = queues.registered(client, cluster)
    keys = Keys(cluster)
    with translate("reading the outgoing queues' depths"):
        pipe = client.pipeline(transaction=False)
        for kind, name in listed:
            pipe.llen(keys.out_queue(kind, name))
            pipe.llen(keys.out_processing(kind, name))
            pipe.llen(keys.out_parked(kind, name))
        depths = pipe.execute()
    out = []
    for i, (kind, name) in enumerate(listed):
        waiting = int(depths[3 * i]) + int(depths[3 * i + 1])
        parked = int(depths[3 * i + 2])
        if waiting or parked:
            out.append({"kind": f"{kind}-outgoing", "name": name, "waiting": waiting, "parked": parked})
    return out


def _servers(live: dict | None, known: list[KnownServer], holder: str | None) -> list[dict]:
    """live None: Redis could not be read, so whether a server is live is unknown."""
    rows = {}
    for k in known:
        rows[k.name] = {
            "name": k.name,
            "live": False if live is not None else None,
            "address": f"{k.host}:{k.port}",
            "pid": None,
            "since": None,
            "state": "gone" if live is not None else "unknown",
            "role": "",
        }
    for name, m in (live or {}).items():
        rows[name] = {
            "name": name,
            "live": True,
            "address": m.address,
            "pid": m.pid,
            "since": m.started_at,
            "state": m.state,
            "role": "holder" if name == holder else (m.role or "standby"),
            "tls": m.tls,  # its port serves HTTPS only
        }
    return [rows[name] for name in sorted(rows, key=natural_key)]  # server2 before server10


def check_writes(client: redis.Redis, cluster: str) -> None:
    """CoordError unless Redis takes a write and a PUBLISH from this client, as the dashboard's
    actions need (one transaction on a key and channel of the cluster's own that nothing reads).
    Reads alone work with Redis a replica, or an ACL that refuses PUBLISH: a status view that
    only read said nothing while every action failed."""
    probe = Keys(cluster).dashboard_probe
    with translate("the page's actions will fail"):
        pipe = client.pipeline(transaction=True)
        pipe.set(probe, "1", px=PROBE_TTL_MS)
        pipe.publish(probe, "1")
        pipe.execute()


def _activity_for(stats: dict) -> int | None:
    """Whole seconds the connector had been in its own state when it last wrote its stats: both
    times are its host's clock, so a reader's clock (another host's) does not enter it."""
    since, updated = stats.get("state_since"), stats.get("updated")
    if not isinstance(since, (int, float)) or not isinstance(updated, (int, float)):
        return None
    return max(0, int(updated - since))


NOT_RUNNING = "NOT_RUNNING"  # the state of an active connector no holder runs (a takeover under way)
# The activity of a connector its supervisor says is RUNNING that has written no statistics for
# their TTL (zato.connector.base.STATS_TTL, 10 s): stopped (SIGSTOP) or hung, until the holder's
# [main] connector_hang_after kills it. Before, it read RUNNING, as if it worked.
SILENT = "silent"
INACTIVE = "INACTIVE"  # the dashboard's state of an inactive outgoing connection holding messages


def not_running(children: list[dict], defined: Iterable[str]) -> list[str]:
    """KIND:NAME of the active connectors (`defined`, from the ODB) that are not among the
    holder's `children`: no holder runs them now (a takeover, no server holding the lease, or
    one just created that the holder has not started yet). The metrics and the dashboard show
    each in state NOT_RUNNING."""
    running = {str(c.get("name")) for c in children}
    return [name for name in defined if name not in running]


def _child(c: dict, stats: dict) -> dict:
    """The supervisor's view of a connector plus the counters the connector keeps itself."""
    keep = ("name", "kind", "state", "pid", "restarts", "last_error")
    child = {k: c.get(k) for k in keep}
    for k in ("messages_in", "messages_out", "failures", "parked", "parking_queue", "backouts", "reconnects"):
        child[k] = stats.get(k)
    child["activity"] = stats.get("state")  # the connector's own: running, reconnecting, fatal...
    if not stats and c.get("state") == "RUNNING":  # its statistics expired: it has not run for 10 s
        child["activity"] = SILENT
    child["activity_for"] = _activity_for(stats)
    # The supervisor knows why a process died; the connector knows why its work failed, and
    # why it cannot run at all (a missing package, an address it cannot bind: FATAL, or BACKOFF
    # before it), which says more than its exit code. A process that runs again writes over it.
    if c.get("state") in ("FATAL", "BACKOFF") and stats.get("state") == "fatal" and stats.get("last_error"):
        child["last_error"] = stats["last_error"]
    child["last_error"] = child["last_error"] or stats.get("last_error") or ""
    return child
