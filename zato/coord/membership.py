"""Cluster membership: one Redis key per live server, refreshed with a TTL.

A key that expires means the server is gone. The index set lets readers list members
without SCAN; entries whose key has expired are dropped by readers.

Entries are signed with a key derived from the cluster secret (`zato.coord.signing`) and
parsed strictly (`zato.coord.parse`): readers get only members whose signature checks and
whose every field has its shape, so a process without the secret cannot join the cluster,
and a forged or odd entry is logged once and ignored.

Every entry also carries its signed write time `at` (epoch seconds, rewritten on every
heartbeat) and its writer's `ttl`: a reader refuses an entry whose `at` is further than
`max_age(ttl)` from now, so a copy of a stopped server's entry, written back by anyone who can
write to Redis, stops being a member after that bound. Both times are Redis's clock
(zato.coord.redis_clock), so the hosts' own clocks need not agree; an entry without `at` (an
older version's) is refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis

from zato.common import jsonenc
from zato.common.errors import ComponentError, ConfigError, CoordError
from zato.config.settings import MAX_MEMBERSHIP_TTL
from zato.coord import events, parse, redis_clock, subscribe
from zato.coord.client import texts, translate
from zato.coord.keys import Keys
from zato.coord.signing import sign, verified

logger = logging.getLogger(__name__)
_bad = parse.LogOnce(logger)

MAX_ENTRY_AGE = 60.0  # seconds: the least bound on how far a member entry's `at` may be from now
AGE_IN_TTLS = 10  # the bound is at least this many of the writer's ttl (heartbeats and skew)
MAX_TTL = MAX_MEMBERSHIP_TTL  # the largest writer's ttl a reader believes


def max_age(ttl: float) -> float:
    """How far (either way) a member entry's signed `at` may be from the reader's clock."""
    return max(ttl * AGE_IN_TTLS, MAX_ENTRY_AGE)


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
    tls: bool = False  # its port serves HTTPS only (server.conf [tls] cert)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @classmethod
    def parse(cls, data: object) -> Member:
        """A member from an entry's verified fields; BadEntry naming the first bad one.
        Fields a newer server may add are ignored, not a reason to drop the member."""
        if not isinstance(data, dict):
            raise parse.BadEntry("a member entry must be a JSON object")
        return cls(
            name=parse.name(data.get("name"), "member name"),
            host=parse.host(data.get("host")),
            port=parse.port(data.get("port")),
            pid=parse.integer(data.get("pid"), "pid", 1, parse.MAX_PID),
            started_at=parse.number(data.get("started_at"), "started_at"),
            state=parse.choice(data.get("state", "running"), "state", ("running", "draining")),
            role=parse.choice(data.get("role", ""), "role", ("", "holder", "standby")),
            seen_epoch=parse.integer(data.get("seen_epoch", 0), "seen_epoch", 0, parse.MAX_EPOCH),
            tls=parse.flag(data.get("tls", False), "tls"),
        )


def entry(member: Member, key: bytes, ttl: float, at: float | None = None) -> str:
    """The signed JSON stored under the member's key, stamped with its write time `at`
    (default: now, wall clock) and the key's `ttl`."""
    stamp = round(time.time() if at is None else at, 3)
    return sign(key, {**asdict(member), "at": stamp, "ttl": ttl})


def announce(client: redis.Redis, cluster: str, member: Member, ttl: float, key: bytes) -> None:
    """Create or refresh this server's key (one round trip); `key`: `signing.member_key`."""
    keys = Keys(cluster)
    with translate("membership heartbeat"):
        pipe = client.pipeline(transaction=False)
        signed = entry(member, key, ttl, at=redis_clock.now(client))
        pipe.set(keys.member(member.name), signed, px=int(ttl * 1000))
        pipe.sadd(keys.members, member.name)
        pipe.execute()


def index(client: redis.Redis, cluster: str, name: str) -> None:
    """Put `name` in the index set readers list members from (after a refresh() wrote its
    key: the set may have lost it, e.g. to a reader that saw the key expire)."""
    members = Keys(cluster).members
    with translate("membership index", key=members):
        client.sadd(members, name)


Replaced = Callable[[Member], None]  # told the live entry of another address a heartbeat replaced


def refresh(  # noqa: PLR0913
    client: redis.Redis,
    cluster: str,
    member: Member,
    ttl: float,
    key: bytes,
    on_replaced: Replaced | None = None,
) -> bool:
    """Heartbeat in one command; True if the key was not there (the server (re)joined), in
    which case the caller should index() the name at once (it does now and then anyway).
    `on_replaced` is told when the entry replaced was another address's: the same name runs
    twice (each heartbeat replaces the other's)."""
    mine = Keys(cluster).member(member.name)
    with translate("membership heartbeat", key=mine):
        signed = entry(member, key, ttl, at=redis_clock.now(client))
        old = client.set(mine, signed, px=int(ttl * 1000), get=True)
    if isinstance(old, str | bytes) and on_replaced is not None:
        other = other_address(old, member, key)
        if other is not None:
            on_replaced(other)
    return old is None


def other_address(raw: str | bytes, member: Member, key: bytes | None) -> Member | None:
    """The member of entry `raw` if it is valid and another address's than `member`'s."""
    try:
        other = read_entry(raw, member.name, key)
    except parse.BadEntry:
        return None
    return other if other.address != member.address else None


CHANGES = ("joined", "draining", "left")


def publish_change(client: redis.Redis, cluster: str, name: str, event: str) -> None:
    """Tell listeners (the LB controller) at once: event is joined | draining | left."""
    with translate("membership change notice"):
        client.publish(Keys(cluster).members_channel, json.dumps({"name": name, "event": event}))


# KEYS: member, members.  ARGV: name, pid, host, port.  Deletes the entry only if it is the
# caller's (same pid and address): a server never removes another one's membership.
_WITHDRAW_OWN = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc) ~= 'table' or doc['pid'] ~= tonumber(ARGV[2])
     or doc['host'] ~= ARGV[3] or doc['port'] ~= tonumber(ARGV[4]) then
    return 0
  end
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


def withdraw(client: redis.Redis, cluster: str, name: str, owner: Member | None = None) -> bool:
    """Graceful leave: the key goes first so the LB stops sending traffic at once. With
    `owner` (the caller's own entry), only an entry with its pid and address is removed;
    False when the key belongs to another process."""
    keys = Keys(cluster)
    with translate("membership withdraw"):
        if owner is not None:
            args: list[str | int] = [name, owner.pid, owner.host, owner.port]
            return bool(int(client.eval(_WITHDRAW_OWN, 2, keys.member(name), keys.members, *args)))
        pipe = client.pipeline(transaction=False)
        pipe.delete(keys.member(name))
        pipe.srem(keys.members, name)
        pipe.execute()
    return True


def check_name_free(client: redis.Redis, cluster: str, key: bytes, name: str, address: str) -> None:
    """CoordError unless no live server of `cluster` other than the one at `address` has `name`
    (the same server restarted after a crash leaves its own entry until its TTL: that is fine)."""
    name_free(live_servers(client, cluster, key), name, address)


def joined(client: redis.Redis, cluster: str, key: bytes, name: str, pid: int) -> bool:
    """Whether server `name` whose arbiter is `pid` is a live member (its entry signed with
    `key`): not an earlier run's entry that has yet to expire."""
    return any(m.name == name and m.pid == pid for m in live_servers(client, cluster, key))


def signed_otherwise(client: redis.Redis, cluster: str, key: bytes, name: str) -> list[str]:
    """The names of the live servers of `cluster` (other than `name`: its own entry, left by a
    restart, may carry an old secret) when none
    of their entries verifies with `key` but they are fresh and well-formed otherwise: they
    sign with another cluster secret, so they, the LB and the connectors would ignore a server
    with `key`. [] when there is no other live server or one of them verifies."""
    names, values, now = _raw_entries(client, cluster, prune=False)
    if not names:
        return []

    def others(members: list[Member]) -> list[Member]:
        return [m for m in members if m.name != name]

    unverified = others(read_entries(cluster, names, values, None, now))
    if not unverified or others(read_entries(cluster, names, values, key, now)):
        return []
    return sorted({m.name for m in unverified})


def refuse_foreign_secret(
    client: redis.Redis, cluster: str, key: bytes, name: str, config_file: str, consequence: str
) -> None:
    """ConfigError when the live servers of `cluster` sign their entries with another cluster
    secret than `key` (signed_otherwise): a component started with it would ignore them, or be
    ignored. `consequence` says what it would mean for the one starting."""
    others = signed_otherwise(client, cluster, key, name)
    if others:
        raise ConfigError(
            f"{config_file}: [auth] cluster_secret is not the one the live servers of cluster"
            f" {cluster} sign their membership with ({', '.join(others[:5])}): {consequence};"
            " give it their cluster_secret, or, if it is another cluster on the same Redis, a name of"
            " its own (a quickstart: create it again with `zato quickstart create DIR --cluster NAME`)"
        )


def name_free(live: list[Member], name: str, address: str) -> None:
    """CoordError if one of `live` other than the one at `address` has `name`."""
    for m in live:
        if m.name == name and m.address != address:
            raise CoordError(f"server name {name!r} is taken by the live server at {m.address} (pid {m.pid})")


def forget(
    client: redis.Redis, cluster: str, key: bytes | None, name: str, remove: Callable[[], bool]
) -> bool:
    """Take server `name` off the cluster's list for good: ComponentError while it runs, else
    remove() (its ODB row: False when there is none) and its operator drain hold. False when
    there was neither. Redis failing after remove(): the CoordError says the row is gone and
    the hold may stay, and the same call made again once Redis answers takes the hold off.
    A Redis that takes no write (a read-only replica) is found before remove(): nothing is
    removed then (events.reachable's CoordError says why)."""
    running = next((m for m in live_servers(client, cluster, key) if m.name == name), None)
    if running is not None:
        raise ComponentError(
            f"server {name} is running at {running.address} (pid {running.pid}): stop it first"
        )
    events.reachable(client, cluster)  # the hold's removal would be refused after the row's
    removed = remove()
    try:
        with translate("removing the server's drain hold"):  # none left behind for the name
            held = bool(client.srem(Keys(cluster).operator_drained, name))
    except CoordError as e:
        if not removed:
            raise
        raise type(e)(
            f"{e}: server {name} is off the cluster's list in the ODB, but an operator's drain hold"
            " on its name may stay in Redis (a server of that name would be kept drained): run it"
            " again once Redis answers"
        ) from None
    return removed or held


def set_operator_drain(client: redis.Redis, cluster: str, name: str, drained: bool) -> None:
    """An operator's hold: the LB keeps `name` drained (no new requests) until it is lifted,
    whatever the server itself reports. Listeners are woken at once. The hold and its notice
    go in one transaction: a Redis that refuses either (its ACL, a replica) makes neither, so an
    action answered "refused" has changed nothing (before, the hold stayed and the LB applied
    it at its next reconcile)."""
    keys = Keys(cluster)
    notice = json.dumps({"name": name, "event": "draining" if drained else "joined"})
    with translate("operator drain", key=keys.operator_drained):  # named if it holds another type
        pipe = client.pipeline(transaction=True)
        if drained:
            pipe.sadd(keys.operator_drained, name)
        else:
            pipe.srem(keys.operator_drained, name)
        pipe.publish(keys.members_channel, notice)
        pipe.execute()


def operator_drained(client: redis.Redis, cluster: str) -> set[str]:
    with translate("operator drain read"):
        return {str(n) for n in client.smembers(Keys(cluster).operator_drained)}


def live_servers(client: redis.Redis, cluster: str, key: bytes | None) -> list[Member]:
    """The live servers of `cluster` whose entries are signed with `key` and fresh, by name.
    `key` None (only for a display that has no cluster secret): entries are parsed strictly
    but not verified. The LB and the connectors always pass the key."""
    names, values, now = _raw_entries(client, cluster, prune=True)
    return read_entries(cluster, names, values, key, now) if names else []


# KEYS: the index set, then the entries of the names in ARGV (in order). Takes a name off the
# index only while its entry is still gone: a server whose heartbeat wrote it again since the
# reader's MGET (and put its name back, refresh() then index()) stays listed.
_PRUNE = """
local removed = 0
for i, name in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], name)
  end
end
return removed
"""


def _raw_entries(client: redis.Redis, cluster: str, prune: bool) -> tuple[list[str], list, float]:
    """The member names of `cluster`, their raw entries (None: expired) and Redis's clock now;
    `prune`: names whose entry expired are taken off the set too, unless written again since
    (_PRUNE: before, a plain SREM, and a server that rejoined between this read and it was
    listed nowhere until its heartbeat indexed it again, up to 10 heartbeats later)."""
    keys = Keys(cluster)
    with translate("membership read"):
        names = sorted(texts(client.smembers(keys.members)))
        if not names:
            return [], [], 0.0
        values = client.mget([keys.member(n) for n in names])
        gone = [n for n, v in zip(names, values, strict=True) if v is None]
        if prune and gone:
            client.eval(_PRUNE, 1 + len(gone), keys.members, *(keys.member(n) for n in gone), *gone)
        return names, values, redis_clock.now(client)


def read_entries(cluster: str, names: list[str], values: list, key: bytes | None, now: float) -> list[Member]:
    """The members stored under `names` (`values`: their raw entries, None when gone) that
    verify and are fresh at `now`; every other entry is logged once and left out."""
    result = []
    for index_name, raw in zip(names, values, strict=True):
        if raw is not None:
            try:
                result.append(read_entry(raw, index_name, key, now))
            except parse.BadEntry as e:
                _bad.warning(f"cluster {cluster}: ignoring member entry {index_name[:80]!r}: {e}")
    return result


def read_entry(raw: str | bytes, index_name: str, key: bytes | None, now: float | None = None) -> Member:
    """The member stored under `member:{index_name}`, verified, fresh at `now` (default: the
    wall clock) and parsed; BadEntry if not."""
    try:
        data = jsonenc.loads(raw)
    except (TypeError, ValueError):
        raise parse.BadEntry("not JSON") from None
    if key is None and isinstance(data, dict):
        fields: dict | None = data
    else:
        fields = verified(key, data) if isinstance(data, dict) and key else None
    if fields is None:
        raise parse.BadEntry("not signed with this cluster's secret")
    member = Member.parse(fields)
    if member.name != index_name:  # a real server's entry copied under another name
        raise parse.BadEntry(f"its name is {member.name!r}")
    _check_fresh(fields, time.time() if now is None else now)
    return member


def _check_fresh(fields: dict, now: float) -> None:
    """BadEntry unless the entry's signed write time is within `max_age` of `now`: a replayed
    entry of a stopped server is refused once that much time has passed."""
    if "at" not in fields:
        raise parse.BadEntry("it has no signed time 'at' (written by an older version: upgrade every server)")
    at = parse.number(fields["at"], "at")
    ttl = parse.number(fields.get("ttl"), "ttl")
    if not 0 < ttl <= MAX_TTL:
        raise parse.BadEntry(f"its ttl {ttl:g} is not in (0, {MAX_TTL:g}] s")
    bound = max_age(ttl)
    if abs(now - at) > bound:  # the message stays the same tick after tick: it is logged once
        when = "old" if now > at else "ahead of this host's clock"
        raise parse.BadEntry(
            f"its signed time 'at' is more than {bound:g} s {when} (replayed, or a clock is off)"
        )


def writer_key(key: bytes | None, cluster: str) -> bytes:
    """`key`, which a handle needs to write its entry (a read-only display has none)."""
    if key is None:
        raise CoordError(f"cluster {cluster}: writing a member entry needs the cluster secret")
    return key


def notice(raw: str | bytes) -> dict | None:
    """A change notice {"name", "event"} as published by publish_change; None (logged once)
    for anything else."""
    try:
        doc = jsonenc.loads(raw)
    except (TypeError, ValueError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("name"), str) and doc.get("event") in CHANGES:
        return {"name": doc["name"], "event": doc["event"]}
    _bad.warning(f"ignoring a malformed membership change notice: {str(raw)[:200]!r}")
    return None


def notices(on_change: Callable[[dict], None]) -> Callable[[str], None]:
    """on_change(notice) for each raw message that is a change notice (see notice())."""

    def on_message(raw: str) -> None:
        found = notice(raw)
        if found is not None:
            on_change(found)

    return on_message


class RedisMembership:
    """The membership side of the coordination port (zato.coord.port.Membership) over one
    cluster's Redis; `key`: `signing.member_key` (None only for a display without the secret:
    entries are then parsed but not verified). MemoryMembership is its in-memory twin."""

    def __init__(self, client: redis.Redis, cluster: str, key: bytes | None):
        self.client, self.cluster, self.key = client, cluster, key

    def announce(self, member: Member, ttl: float) -> None:
        announce(self.client, self.cluster, member, ttl, writer_key(self.key, self.cluster))

    def refresh(self, member: Member, ttl: float, on_replaced: Replaced | None = None) -> bool:
        key = writer_key(self.key, self.cluster)
        return refresh(self.client, self.cluster, member, ttl, key, on_replaced)

    def index(self, name: str) -> None:
        index(self.client, self.cluster, name)

    def withdraw(self, name: str, owner: Member | None = None) -> bool:
        return withdraw(self.client, self.cluster, name, owner)

    def publish_change(self, name: str, event: str) -> None:
        publish_change(self.client, self.cluster, name, event)

    def live_servers(self) -> list[Member]:
        return live_servers(self.client, self.cluster, self.key)

    def check_name_free(self, name: str, address: str) -> None:
        name_free(self.live_servers(), name, address)

    def set_operator_drain(self, name: str, drained: bool) -> None:
        set_operator_drain(self.client, self.cluster, name, drained)

    def operator_drained(self) -> set[str]:
        return operator_drained(self.client, self.cluster)

    def watch(
        self,
        on_change: Callable[[dict], None],
        should_stop: Callable[[], bool],
        on_subscribed: Callable[[], None] | None = None,
        poll: float = 0.5,
    ) -> None:
        """on_change(notice) for each change published until should_stop(); CoordError when
        Redis fails (subscribe.listen_forever subscribes again)."""
        channel = Keys(self.cluster).members_channel
        subscribe.listen(self.client, channel, notices(on_change), should_stop, on_subscribed, poll)
