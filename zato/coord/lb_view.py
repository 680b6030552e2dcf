"""What each load balancer of a cluster sends new requests to, as its controller last applied
it to HAProxy. A stopping server reads this to know when the LB has drained it, instead of
sleeping for a fixed time; a server with no LB report waits its whole drain bound.

Each view counts only while its LB is alive: the controller writes its view together with a
short-lived liveness key (`Keys.lb_alive`, ALIVE_TTL) when the view changes and at least every
REFRESH seconds while it runs, in one transaction, and removes both when it stops. The view of
an LB that died without stopping (SIGKILL, its host lost) is ignored once its liveness key
expired (in Redis's clock: the hosts' clocks need not agree); the hash itself expires with the
last LB renewing it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from zato.common import jsonenc
from zato.common.log import printable
from zato.coord.client import text, translate
from zato.coord.keys import Keys

REFRESH = 2.0  # seconds between renewals of an unchanged view
ALIVE_TTL = 10.0  # seconds a view counts after its LB's last renewal


@dataclass(frozen=True)
class Views:
    """The views of the LBs alive (LB id -> member names it sends new requests to) and the ids
    of the LBs whose view is left in Redis but no longer renewed (ignored)."""

    live: dict[str, set[str]] = field(default_factory=dict)
    stale: tuple[str, ...] = ()


def publish(client: redis.Redis, cluster: str, lb_id: str, serving: list[str]) -> None:
    """Write the view and renew the LB's liveness: one transaction (a view never counts
    without its liveness, nor outlives it)."""
    keys, ttl_ms = Keys(cluster), int(ALIVE_TTL * 1000)
    with translate("load-balancer view"):
        pipe = client.pipeline(transaction=True)
        pipe.hset(keys.lb_views, lb_id, json.dumps(sorted(serving)))
        pipe.pexpire(keys.lb_views, ttl_ms)
        pipe.set(keys.lb_alive(lb_id), "1", px=ttl_ms)
        pipe.execute()


def withdraw(client: redis.Redis, cluster: str, lb_id: str) -> None:
    keys = Keys(cluster)
    with translate("load-balancer view"):
        pipe = client.pipeline(transaction=True)
        pipe.hdel(keys.lb_views, lb_id)
        pipe.delete(keys.lb_alive(lb_id))
        pipe.execute()


def read(client: redis.Redis, cluster: str) -> Views:
    """The views of the LBs alive; an unreadable entry counts as empty. An LB's id as read goes
    into the log lines of a stopping server: one with line breaks or other unprintable
    characters (not a controller's, which writes host:port) is escaped (log.printable)."""
    keys = Keys(cluster)
    with translate("load-balancer view"):
        raw = {text(k): v for k, v in client.hgetall(keys.lb_views).items()}
        ids = sorted(raw)
        alive = client.mget([keys.lb_alive(i) for i in ids]) if ids else []
    live: dict[str, set[str]] = {}
    stale = []
    for lb_id, flag in zip(ids, alive, strict=True):
        if flag is None:
            stale.append(printable(lb_id))
            continue
        try:
            names = jsonenc.loads(raw[lb_id])
        except ValueError:
            names = []
        live[printable(lb_id)] = (
            {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
        )
    return Views(live, tuple(stale))


def still_serving(views: dict[str, set[str]], name: str) -> list[str]:
    """The LBs that would still send new requests to `name`."""
    return sorted(lb_id for lb_id, names in views.items() if name in names)
