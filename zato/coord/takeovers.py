"""The takeover log: every acquisition of the connector-server lease, newest first.

Written by the supervisor that acquired (holder, epoch, wall-clock time, and how long the
cluster was without a holder as that supervisor measured it on its monotonic clock), read
by the dashboard and /metrics. A capped list plus a counter that never goes down.
"""

from __future__ import annotations

import json

import redis

from zato.common import jsonenc
from zato.coord.client import translate
from zato.coord.keys import Keys

KEEP = 100  # entries kept in the list; the counter counts all of them


def record(
    client: redis.Redis, cluster: str, holder: str, epoch: int, at: float, duration_s: float | None
) -> None:
    """Append one takeover. duration_s None: the first holder (nobody held the lease before)."""
    keys = Keys(cluster)
    entry = {"holder": holder, "epoch": epoch, "at": round(at, 3)}
    entry["duration_s"] = None if duration_s is None else round(duration_s, 3)
    with translate("recording a takeover"):
        pipe = client.pipeline(transaction=True)
        pipe.lpush(keys.takeovers, json.dumps(entry))
        pipe.ltrim(keys.takeovers, 0, KEEP - 1)
        pipe.incr(keys.takeovers_count)
        pipe.execute()


def recent(client: redis.Redis, cluster: str, limit: int = KEEP) -> list[dict]:
    """The newest `limit` takeovers, newest (highest epoch) first; entries that do not parse are
    skipped. Each supervisor records its takeover on a thread of its own once it holds the
    lease: a record slowed on its way (a slow link) could land after the next holder's, and the
    list, in the order they landed, showed epoch 5 above epoch 6."""
    with translate("reading the takeover log"):
        raw = client.lrange(Keys(cluster).takeovers, 0, max(0, limit - 1))
    out = []
    for item in raw:
        try:
            entry = jsonenc.loads(item)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("epoch"), int):
            out.append(entry)
    return sorted(out, key=lambda entry: entry["epoch"], reverse=True)


def count(client: redis.Redis, cluster: str) -> int:
    """Takeovers ever recorded in this cluster (first acquisitions included)."""
    with translate("reading the takeover count"):
        value = client.get(Keys(cluster).takeovers_count)
    try:
        return int(value or 0)
    except ValueError:
        return 0
