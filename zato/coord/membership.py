"""Cluster membership: one Redis key per live server, refreshed with a TTL.

A key that expires means the server is gone. The index set lets readers list members
without SCAN; entries whose key has expired are dropped by readers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import redis

from zato.coord.client import translate
from zato.coord.keys import Keys


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    port: int
    pid: int
    started_at: float  # wall-clock seconds, for display only
    state: str = "running"  # running | draining
    role: str = ""  # connector-server lease: holder | standby ("" if not reported)
    seen_epoch: int = 0  # the newest lease epoch this server has seen (its fencing floor)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


_FIELDS = tuple(f.name for f in fields(Member))


def announce(client: redis.Redis, cluster: str, member: Member, ttl: float) -> None:
    """Create or refresh this server's key (one round trip)."""
    keys = Keys(cluster)
    with translate("membership heartbeat"):
        pipe = client.pipeline(transaction=False)
        pipe.set(keys.member(member.name), json.dumps(asdict(member)), px=int(ttl * 1000))
        pipe.sadd(keys.members, member.name)
        pipe.execute()


def refresh(client: redis.Redis, cluster: str, member: Member, ttl: float) -> bool:
    """Heartbeat in one command; True if the key was not there (the server (re)joined), in
    which case the caller should announce() to put the name back in the index set."""
    with translate("membership heartbeat"):
        old = client.set(
            Keys(cluster).member(member.name), json.dumps(asdict(member)), px=int(ttl * 1000), get=True
        )
    return old is None


def publish_change(client: redis.Redis, cluster: str, name: str, event: str) -> None:
    """Tell listeners (the LB controller) at once: event is joined | draining | left."""
    with translate("membership change notice"):
        client.publish(Keys(cluster).members_channel, json.dumps({"name": name, "event": event}))


def withdraw(client: redis.Redis, cluster: str, name: str) -> None:
    """Graceful leave: the key goes first so the LB stops sending traffic at once."""
    keys = Keys(cluster)
    with translate("membership withdraw"):
        pipe = client.pipeline(transaction=False)
        pipe.delete(keys.member(name))
        pipe.srem(keys.members, name)
        pipe.execute()


def set_operator_drain(client: redis.Redis, cluster: str, name: str, drained: bool) -> None:
    """An operator's hold: the LB keeps `name` drained (no new requests) until it is lifted,
    whatever the server itself reports. Listeners are woken at once."""
    keys = Keys(cluster)
    with translate("operator drain"):
        if drained:
            client.sadd(keys.operator_drained, name)
        else:
            client.srem(keys.operator_drained, name)
    publish_change(client, cluster, name, "draining" if drained else "joined")


def operator_drained(client: redis.Redis, cluster: str) -> set[str]:
    with translate("operator drain read"):
        return {str(n) for n in client.smembers(Keys(cluster).operator_drained)}


def live_servers(client: redis.Redis, cluster: str) -> list[Member]:
    """The live servers of `cluster`, sorted by name."""
    keys = Keys(cluster)
    with translate("membership read"):
        names = sorted(client.smembers(keys.members))
        if not names:
            return []
        values = client.mget([keys.member(n) for n in names])
        gone = [n for n, v in zip(names, values, strict=True) if v is None]
        if gone:
            client.srem(keys.members, *gone)
    result = []
    for v in values:
        if v is not None:
            try:  # fields a newer server may add are ignored, not a reason to drop the member
                data = json.loads(v)
                result.append(Member(**{k: data[k] for k in _FIELDS if k in data}))
            except (ValueError, TypeError):
                continue
    return result

