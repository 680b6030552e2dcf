"""What each load balancer of a cluster sends new requests to, as its controller last applied
it to HAProxy. A stopping server reads this to know when the LB has drained it, instead of
sleeping for a fixed time; a server with no LB report waits its whole drain bound.

Written only when it changes (never on an idle tick), removed when the controller stops."""

from __future__ import annotations

import json

import redis

from zato.common import jsonenc
from zato.coord.client import translate
from zato.coord.keys import Keys


def publish(client: redis.Redis, cluster: str, lb_id: str, serving: list[str]) -> None:
    with translate("load-balancer view"):
        client.hset(Keys(cluster).lb_views, lb_id, json.dumps(sorted(serving)))


def withdraw(client: redis.Redis, cluster: str, lb_id: str) -> None:
    with translate("load-balancer view"):
        client.hdel(Keys(cluster).lb_views, lb_id)


def read(client: redis.Redis, cluster: str) -> dict[str, set[str]]:
    """LB id -> member names it sends new requests to; an unreadable entry counts as empty."""
    with translate("load-balancer view"):
        raw = client.hgetall(Keys(cluster).lb_views)
    views: dict[str, set[str]] = {}
    for lb_id, value in raw.items():
        lb_id = str(lb_id)
        try:
            names = jsonenc.loads(value)
        except ValueError:
            names = []
        views[lb_id] = {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
    return views


def still_serving(views: dict[str, set[str]], name: str) -> list[str]:
    """The LBs that would still send new requests to `name`."""
    return sorted(lb_id for lb_id, names in views.items() if name in names)
