"""Whether Redis may evict the cluster's keys: its maxmemory-policy and maxmemory.

Redis evicts keys silently (no error to anyone) once it reaches its maxmemory under any policy
but `noeviction`: allkeys-* any key, volatile-* any key that carries a TTL. The cluster's
guarantees rest on keys staying until it deletes them, so `zato start` says it and server.log
logs it once at start (a WARNING), `zato cluster status` shows it as a problem, and the
dashboard in its error bar. With `noeviction` Redis refuses writes at its maxmemory instead
(OOM), an outage each component says (zato.coord.health).

Keys of the cluster that carry a TTL (what volatile-lru, -lfu, -random and -ttl may evict; the
last takes those nearest their expiry, the shortest-lived, first): the connector-server lease,
the live servers' entries, internal-call nonces, service locks (self.lock), the ZeroMQ
hand-off's alive keys and markers, the lease's hand-over and yield markers, fan-out and
parallel runs' records, definition changes' run-once keys, the load balancers' views, the
connectors' stats and the holder's status, and the service cache's entries given an expiry.
Without a TTL (only allkeys-* evicts them): the messages waiting in the outgoing queues and in
their processing and parked lists, ZeroMQ hand-overs, invoke_async calls, the fencing epoch,
the live server index, the outgoing queues' index and renamed connections' records.

The user of a cluster's ACL (docs/redis-acl.md: -@dangerous, then +info) may not run CONFIG,
so it reads INFO memory. One made before +info was in the rules may run neither: then the
policy is said to be unchecked, with how to check it by hand; never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from zato.coord.client import text, translate

SAFE = "noeviction"
ALLKEYS = ("allkeys-lru", "allkeys-lfu", "allkeys-random")
VOLATILE = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
FIX = (
    "set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and in"
    " redis.conf; docs/redis-acl.md)"
)
BY_HAND = (
    "check it by hand as a Redis admin: redis-cli CONFIG GET maxmemory-policy must say noeviction"
    " (or CONFIG GET maxmemory 0: no limit); docs/redis-acl.md"
)
# What each kind of policy may drop, as the lines say it
_ANY_KEY = (
    "any key without an error: messages waiting to go out (AMQP and IBM MQ outgoing queues, the"
    " lists being sent, parked ones), ZeroMQ hand-overs, invoke_async calls, the connector-server"
    " lease and its fencing epoch, the live server list and internal-call nonces (a replayed call"
    " would be taken)"
)
_TTL_KEYS = (
    "keys that carry a TTL without an error: the connector-server lease (a takeover while its holder"
    " runs), live servers' entries (a live server taken out of the load balancer), internal-call"
    " nonces (a replayed call would be taken), service locks (two holders at once), the ZeroMQ"
    " hand-off's markers"
)


@dataclass(frozen=True)
class Eviction:
    """What Redis said of its eviction: `policy` ("" when it could not be read, `unread`
    saying why) and `maxmemory` in bytes (0: no limit, nothing is ever evicted)."""

    policy: str = ""
    maxmemory: int = 0
    unread: str = ""

    @property
    def dangerous(self) -> bool:
        """Redis may evict the cluster's keys: a limit, and a policy that evicts."""
        return bool(self.policy) and self.policy != SAFE and self.maxmemory > 0

    def as_dict(self) -> dict:
        return {"policy": self.policy or None, "maxmemory": self.maxmemory, "unread": self.unread or None}


def read(client: redis.Redis) -> Eviction:
    """Redis's maxmemory-policy and maxmemory: CONFIG GET, else INFO memory (a managed Redis
    that renamed CONFIG away). An Eviction with `unread` when Redis refuses both (an ACL user
    without CONFIG nor INFO, as docs/redis-acl.md makes it). CoordError when Redis cannot be
    reached."""
    refused = []
    with translate("reading Redis's maxmemory-policy"):
        for ask in (_by_config, _by_info):
            try:
                return ask(client)
            except redis.exceptions.NoPermissionError as e:  # the ACL: -@dangerous
                refused.append(f"NOPERM: {e}")
            except redis.ResponseError as e:  # a command renamed or disabled
                refused.append(str(e))
    return Eviction(unread="; ".join(dict.fromkeys(refused)))


def _by_config(client: redis.Redis) -> Eviction:
    replies: dict = {**client.config_get("maxmemory-policy"), **client.config_get("maxmemory")}
    found = {text(k): text(v) for k, v in replies.items()}
    return Eviction(found.get("maxmemory-policy", ""), int(found.get("maxmemory") or 0))


def _by_info(client: redis.Redis) -> Eviction:
    found: dict = client.info("memory")  # type: ignore[assignment]
    return Eviction(str(found.get("maxmemory_policy", "")), int(found.get("maxmemory") or 0))


def warning(found: Eviction, where: str) -> str:
    """The one line saying Redis at `where` may evict the cluster's keys ("" when it may not)."""
    if not found.dangerous:
        return ""
    drops = _ANY_KEY if found.policy in ALLKEYS else _TTL_KEYS
    return (
        f"Redis at {where} has maxmemory-policy {found.policy} with maxmemory {_size(found.maxmemory)}:"
        f" at its maxmemory it evicts {drops}; {FIX}"
    )


def unchecked(found: Eviction, where: str) -> str:
    """The one line saying Redis's policy could not be read ("" when it was)."""
    if not found.unread:
        return ""
    return (
        f"could not check the maxmemory-policy of Redis at {where} ({found.unread}): any policy but"
        f" noeviction lets Redis drop the cluster's keys (queued messages, the lease) without an"
        f" error once at its maxmemory; {BY_HAND}"
    )


def said(found: Eviction, where: str) -> str:
    """warning() or unchecked(), whichever applies ("" when Redis keeps every key)."""
    return warning(found, where) or unchecked(found, where)


def _size(n: int) -> str:
    for unit, size in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n} bytes"
