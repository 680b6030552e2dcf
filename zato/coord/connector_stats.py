"""Connector statistics in Redis: each connector process writes its own JSON with a TTL, the
supervisor and `zato cluster status` read them. A key that expired means the process is gone.

Fields: kind, name, pid, started (wall clock, display only), state, state_since (when it
last changed, the writer's wall clock), messages_in, messages_out, failures, parked,
last_error, last_error_at, updated. Never a password.
"""

from __future__ import annotations

import json

import redis

from zato.common import jsonenc
from zato.coord.client import translate
from zato.coord.keys import Keys

TTL = 10.0  # seconds a running connector's statistics last unless written again: silent this long, it
# shows as such (zato.coord.status.SILENT)


def write(client: redis.Redis, cluster: str, name: str, stats: dict, ttl: float) -> None:
    with translate(f"writing stats of connector {name!r}"):
        client.set(Keys(cluster).connector_stats(name), json.dumps(stats), px=int(ttl * 1000))


def read(client: redis.Redis, cluster: str, names: list[str]) -> dict[str, dict]:
    """Stats per connector name (the ConnectorSpec name); names with no live stats are left out."""
    if not names:
        return {}
    keys = Keys(cluster)
    with translate("reading connector stats"):
        values = client.mget([keys.connector_stats(n) for n in names])
    return parse_stats(names, values)


def parse_stats(names: list[str], values: list) -> dict[str, dict]:
    """Stats per name from the raw values stored for `names` (None: gone); values that are
    not a JSON object are left out, and so are fields that are not a plain value."""
    out = {}
    for name, raw in zip(names, values, strict=True):
        if raw is None:
            continue
        try:
            doc = jsonenc.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):  # anything else was not written by a connector
            out[name] = {k: v for k, v in doc.items() if isinstance(v, (str, int, float)) or v is None}
    return out


class RedisConnectorStats:
    """The connector-stats side of the coordination port (zato.coord.port.ConnectorStats) over
    one cluster's Redis; MemoryConnectorStats is its in-memory twin."""

    def __init__(self, client: redis.Redis, cluster: str):
        self.client, self.cluster = client, cluster

    def write(self, name: str, stats: dict, ttl: float) -> None:
        write(self.client, self.cluster, name, stats, ttl)

    def read(self, names: list[str]) -> dict[str, dict]:
        return read(self.client, self.cluster, names)
