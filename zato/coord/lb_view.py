"""What each load balancer of a cluster sends new requests to, as its controller last applied
it to HAProxy. A stopping server reads this to know when the LB has drained it, instead of
sleeping for a fixed time; a server with no LB report waits its whole drain bound.

Each view counts only while its LB is alive: the controller writes its view together with a
short-lived liveness key (`Keys.lb_alive`, ALIVE_TTL) when the view changes and at least every
REFRESH seconds while it runs, in one transaction, and removes both when it stops. The view of
an LB that died without stopping (SIGKILL, its host lost) is ignored once its liveness key
expired (in Redis's clock: the hosts' clocks need not agree); the hash itself expires with the
last LB renewing it.

With its view each LB writes the members it has but HAProxy sends nothing to (DOWN: their checks
fail, or MAINT), from HAProxy's own state: `zato cluster status`, from any host, says so of a
server that membership alone calls live (its workers hung while its supervisor renews its entry,
or the LB cannot reach it)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import redis

from zato.common import jsonenc
from zato.common.log import printable
from zato.common.order import natural_key
from zato.coord.client import text, translate
from zato.coord.keys import Keys

REFRESH = 2.0  # seconds between renewals of an unchanged view
# What HAProxy says of a server ("DOWN (last check L7TOUT)", "MAINT"): shown by zato cluster status,
# so nothing else a Redis writer puts there (a terminal's escape sequences) is
_STATE_RE = re.compile(r"[A-Za-z0-9 ()/._-]{1,80}")
ALIVE_TTL = 10.0  # seconds a view counts after its LB's last renewal


@dataclass(frozen=True)
class Views:
    """The views of the LBs alive (LB id -> member names it sends new requests to) and the ids
    of the LBs whose view is left in Redis but no longer renewed (ignored)."""

    live: dict[str, set[str]] = field(default_factory=dict)
    stale: tuple[str, ...] = ()
    down: dict[str, dict[str, str]] = field(default_factory=dict)  # LB id -> {member: HAProxy's state}


def publish(
    client: redis.Redis, cluster: str, lb_id: str, serving: list[str], down: dict[str, str] | None = None
) -> None:
    """Write the view (and `down`: member -> HAProxy's state, for those it sends nothing to)
    and renew the LB's liveness: one transaction (a view never counts without its liveness, nor
    outlives it)."""
    keys, ttl_ms = Keys(cluster), int(ALIVE_TTL * 1000)
    with translate("load-balancer view"):
        pipe = client.pipeline(transaction=True)
        pipe.hset(keys.lb_views, lb_id, json.dumps(sorted(serving)))
        pipe.pexpire(keys.lb_views, ttl_ms)
        pipe.hset(keys.lb_down, lb_id, json.dumps(down or {}, sort_keys=True))
        pipe.pexpire(keys.lb_down, ttl_ms)
        pipe.set(keys.lb_alive(lb_id), "1", px=ttl_ms)
        pipe.execute()


def withdraw(client: redis.Redis, cluster: str, lb_id: str) -> None:
    keys = Keys(cluster)
    with translate("load-balancer view"):
        pipe = client.pipeline(transaction=True)
        pipe.hdel(keys.lb_views, lb_id)
        pipe.hdel(keys.lb_down, lb_id)
        pipe.delete(keys.lb_alive(lb_id))
        pipe.execute()


def read(client: redis.Redis, cluster: str) -> Views:
    """The views of the LBs alive; an unreadable entry counts as empty. An LB's id as read goes
    into the log lines of a stopping server: one with line breaks or other unprintable
    characters (not a controller's, which writes host:port) is escaped (log.printable)."""
    keys = Keys(cluster)
    with translate("load-balancer view"):
        raw = {text(k): v for k, v in client.hgetall(keys.lb_views).items()}
        down = {text(k): v for k, v in client.hgetall(keys.lb_down).items()}
        ids = sorted(raw)
        alive = client.mget([keys.lb_alive(i) for i in ids]) if ids else []
    live: dict[str, set[str]] = {}
    marked: dict[str, dict[str, str]] = {}
    stale = []
    for lb_id, flag in zip(ids, alive, strict=True):
        if flag is None:
            stale.append(printable(lb_id))
            continue
        names = _loads(raw[lb_id])
        live[printable(lb_id)] = (
            {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
        )
        states = _loads(down.get(lb_id))  # none from an LB of a version before it
        if isinstance(states, dict):
            marked[printable(lb_id)] = {
                k: v for k, v in states.items() if isinstance(v, str) and _STATE_RE.fullmatch(v)
            }
    return Views(live, tuple(stale), marked)


def _loads(raw: str | bytes | None) -> object:
    try:
        return jsonenc.loads(raw) if raw is not None else None
    except ValueError:
        return None


def still_serving(views: dict[str, set[str]], name: str) -> list[str]:
    """The LBs that would still send new requests to `name`."""
    return sorted(lb_id for lb_id, names in views.items() if name in names)


def not_serving(views: Views, servers: list[dict]) -> list[str]:
    """A line for each live running member (zato.coord.status's `servers`) that a live LB's
    HAProxy marks DOWN or MAINT: membership alone calls it live, and that LB sends it nothing."""
    running = {str(s.get("name")) for s in servers if s.get("live") is True and s.get("state") == "running"}
    return [
        f"server {name} is live but load balancer {lb_id} marks it {state}: it sends it no requests"
        for lb_id in sorted(views.down)
        for name, state in sorted(views.down[lb_id].items(), key=lambda item: natural_key(item[0]))
        if name in running
    ]
