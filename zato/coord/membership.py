"""Cluster membership: one Redis key per live server, refreshed with a TTL.

A key that expires means the server is gone. The index set lets readers list members
without SCAN; entries whose key has expired are dropped by readers.

Entries are signed with a key derived from the cluster secret (`zato.coord.signing`) and
parsed strictly (`zato.coord.parse`): readers get only members whose signature checks and
whose every field has its shape, so a process without the secret cannot join the cluster,
and a forged or odd entry is logged once and ignored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import redis

from zato.common.errors import CoordError
from zato.coord import parse
from zato.coord.client import translate
from zato.coord.keys import Keys
from zato.coord.signing import sign, verified

logger = logging.getLogger(__name__)
_bad = parse.LogOnce(logger)


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
        )


def entry(member: Member, key: bytes) -> str:
    """The signed JSON stored under the member's key."""
    return sign(key, asdict(member))


def announce(client: redis.Redis, cluster: str, member: Member, ttl: float, key: bytes) -> None:
    """Create or refresh this server's key (one round trip); `key`: `signing.member_key`."""
    keys = Keys(cluster)
    with translate("membership heartbeat"):
        pipe = client.pipeline(transaction=False)
        pipe.set(keys.member(member.name), entry(member, key), px=int(ttl * 1000))
        pipe.sadd(keys.members, member.name)
        pipe.execute()


def refresh(client: redis.Redis, cluster: str, member: Member, ttl: float, key: bytes) -> bool:
    """Heartbeat in one command; True if the key was not there (the server (re)joined), in
    which case the caller should announce() to put the name back in the index set."""
    with translate("membership heartbeat"):
        old = client.set(Keys(cluster).member(member.name), entry(member, key), px=int(ttl * 1000), get=True)
    return old is None


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
            args = [name, owner.pid, owner.host, owner.port]
            return bool(int(client.eval(_WITHDRAW_OWN, 2, keys.member(name), keys.members, *args)))
        pipe = client.pipeline(transaction=False)
        pipe.delete(keys.member(name))
        pipe.srem(keys.members, name)
        pipe.execute()
    return True


def check_name_free(client: redis.Redis, cluster: str, key: bytes, name: str, address: str) -> None:
    """CoordError unless no live server of `cluster` other than the one at `address` has `name`
    (the same server restarted after a crash leaves its own entry until its TTL: that is fine)."""
    for m in live_servers(client, cluster, key):
        if m.name == name and m.address != address:
            raise CoordError(f"server name {name!r} is taken by the live server at {m.address} (pid {m.pid})")


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


def live_servers(client: redis.Redis, cluster: str, key: bytes | None) -> list[Member]:
    """The live servers of `cluster` whose entries are signed with `key`, sorted by name.
    `key` None (only for a display that has no cluster secret): entries are parsed strictly
    but not verified. The LB and the connectors always pass the key."""
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
    for index_name, raw in zip(names, values, strict=True):
        if raw is not None:
            try:
                result.append(read_entry(raw, index_name, key))
            except parse.BadEntry as e:
                _bad.warning(f"cluster {cluster}: ignoring member entry {index_name[:80]!r}: {e}")
    return result


def read_entry(raw: str | bytes, index_name: str, key: bytes | None) -> Member:
    """The member stored under `member:{index_name}`, verified and parsed; BadEntry if not."""
    try:
        data = json.loads(raw)
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
    return member
