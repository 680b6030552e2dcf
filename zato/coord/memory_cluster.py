"""Membership, outgoing queues, connector stats and config events in memory: the rest of what
one Redis holds for a cluster (`MemoryCluster`), next to the lease's `MemoryCoord`, and the
handles the product code would use on it, with the methods of the Redis implementations
(zato.coord.port).

Like MemoryCoord it follows Redis step by step: keys expire on the injected clock (the
coordinator's), member entries are the same signed JSON, read and verified by the same code
(`membership.read_entries`, against the injected wall clock), lists keep Redis's ends (index 0
is the head: LPUSH inserts there, the connector takes from the tail), and a take is fenced by
the lease's epoch exactly as the Lua script is; a pub/sub channel carries the same raw JSON
to the subscriptions open when it is published (none is kept for a later one). A server cut
off with `coord.partition(server)` gets CoordUnavailable from its handles; `lose_data()`
empties everything, the lease included.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zato.common import jsonenc
from zato.common.errors import CoordError, CoordUnavailable
from zato.common.retry import Backoff
from zato.coord import events, subscribe
from zato.coord.connector_stats import parse_stats
from zato.coord.membership import Member, entry, name_free, notices, other_address, read_entries, writer_key
from zato.coord.memory import MemoryCoord
from zato.coord.queues import stale

MEMBERS_CHANNEL, EVENTS_CHANNEL = "members", "events"


@dataclass
class MemoryCluster:
    """The shared state of one cluster besides the lease, as its Redis would hold it."""

    name: str = "memory"  # the cluster's name (in log lines)
    coord: MemoryCoord = field(default_factory=MemoryCoord)
    wall: Callable[[], float] = time.time  # the hosts' wall clock: member entries' signed time
    members: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (entry, expires)
    index: set[str] = field(default_factory=set)
    drained: set[str] = field(default_factory=set)
    lists: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    stats: dict[str, tuple[str, float]] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    subscribers: dict[str, list[list[str]]] = field(default_factory=dict)  # channel -> an inbox each

    def reach(self, server: str, what: str) -> None:
        if server in self.coord.unreachable:
            raise CoordUnavailable(f"{what}: cannot reach the coordination store")

    def alive(self, table: dict[str, tuple[str, float]], name: str) -> str | None:
        """The value under `name` unless its TTL ran out (then it is dropped, as Redis does)."""
        value, expires = table.get(name, ("", 0.0))
        if not value or expires <= self.coord.clock():
            table.pop(name, None)
            return None
        return value

    def write_entry(self, name: str, raw: str, ttl: float) -> None:
        """Store `raw` as the member entry of `name`: what anyone who can write to Redis can do."""
        with self.changed:
            self.members[name] = (raw, self.coord.clock() + ttl)
            self.index.add(name)

    def publish(self, server: str, channel: str, raw: str, what: str) -> int:
        """PUBLISH: `raw` to every subscription open on `channel`; how many."""
        self.reach(server, what)
        with self.changed:
            inboxes = self.subscribers.get(channel, [])
            for inbox in inboxes:
                inbox.append(raw)
            self.changed.notify_all()
            return len(inboxes)

    def listen(
        self,
        server: str,
        channel: str,
        on_message: Callable[[str], None],
        should_stop: Callable[[], bool],
        on_subscribed: Callable[[], None] | None,
        poll: float,
    ) -> None:
        """One subscription, as zato.coord.subscribe.listen: on_message(raw) per message
        published on `channel` from now on until should_stop(); CoordUnavailable once `server`
        is cut off."""
        what = f"listening on {channel}"
        self.reach(server, what)
        inbox: list[str] = []
        with self.changed:
            self.subscribers.setdefault(channel, []).append(inbox)
        try:
            if on_subscribed is not None:
                on_subscribed()
            while not should_stop():
                self.reach(server, what)
                with self.changed:
                    self.changed.wait_for(lambda: bool(inbox), timeout=poll)
                    got, inbox[:] = list(inbox), []
                for raw in got:
                    on_message(raw)
        finally:
            with self.changed:
                self.subscribers[channel].remove(inbox)

    def lose_data(self) -> None:
        """A Redis restarted without its data: the lease, members, queues and stats are gone."""
        with self.changed:
            self.coord.lose_data()
            self.members.clear()
            self.index.clear()
            self.drained.clear()
            for items in self.lists.values():  # handles keep their lists: empty them in place
                items.clear()
            self.stats.clear()


class MemoryMembership:
    """One process's membership handle (see zato.coord.membership.RedisMembership)."""

    def __init__(self, cluster: MemoryCluster, key: bytes | None, server: str = ""):
        self.cluster, self.key, self.server = cluster, key, server

    def _reach(self, what: str) -> MemoryCluster:
        self.cluster.reach(self.server, what)
        return self.cluster

    def _entry(self, member: Member, ttl: float) -> tuple[str, float]:
        c = self.cluster
        return entry(member, writer_key(self.key, c.name), ttl, at=c.wall()), c.coord.clock() + ttl

    def announce(self, member: Member, ttl: float) -> None:
        c = self._reach("membership heartbeat")
        with c.changed:
            c.members[member.name] = self._entry(member, ttl)
            c.index.add(member.name)

    def refresh(
        self, member: Member, ttl: float, on_replaced: Callable[[Member], None] | None = None
    ) -> bool:
        c = self._reach("membership heartbeat")
        with c.changed:
            old = c.alive(c.members, member.name)
            c.members[member.name] = self._entry(member, ttl)
        if old is not None and on_replaced is not None:
            other = other_address(old, member, self.key)
            if other is not None:
                on_replaced(other)
        return old is None

    def index(self, name: str) -> None:
        c = self._reach("membership index")
        with c.changed:
            c.index.add(name)

    def withdraw(self, name: str, owner: Member | None = None) -> bool:
        c = self._reach("membership withdraw")
        with c.changed:
            raw = c.alive(c.members, name)
            if raw is not None and owner is not None and not _owned_by(raw, owner):
                return False
            c.members.pop(name, None)
            c.index.discard(name)
        return True

    def publish_change(self, name: str, event: str) -> None:
        raw = json.dumps({"name": name, "event": event})
        self.cluster.publish(self.server, MEMBERS_CHANNEL, raw, "membership change notice")

    def live_servers(self) -> list[Member]:
        c = self._reach("membership read")
        with c.changed:
            names = sorted(c.index)
            values = [c.alive(c.members, n) for n in names]
            c.index.difference_update(n for n, v in zip(names, values, strict=True) if v is None)
        return read_entries(c.name, names, values, self.key, c.wall())

    def check_name_free(self, name: str, address: str) -> None:
        name_free(self.live_servers(), name, address)

    def set_operator_drain(self, name: str, drained: bool) -> None:
        c = self._reach("operator drain")
        with c.changed:
            (c.drained.add if drained else c.drained.discard)(name)
        self.publish_change(name, "draining" if drained else "joined")

    def operator_drained(self) -> set[str]:
        return set(self._reach("operator drain read").drained)

    def watch(
        self,
        on_change: Callable[[dict], None],
        should_stop: Callable[[], bool],
        on_subscribed: Callable[[], None] | None = None,
        poll: float = 0.5,
    ) -> None:
        on_message = notices(on_change)
        self.cluster.listen(self.server, MEMBERS_CHANNEL, on_message, should_stop, on_subscribed, poll)


def _owned_by(raw: str, owner: Member) -> bool:
    """The withdraw script's test: the entry has the owner's pid, host and port."""
    try:
        doc = jsonenc.loads(raw)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    return (doc.get("pid"), doc.get("host"), doc.get("port")) == (owner.pid, owner.host, owner.port)


class MemoryOutQueue:
    """The lists of one outgoing connection (see zato.coord.queues.OutQueue)."""

    def __init__(self, cluster: MemoryCluster, kind: str, name: str, epoch: int = 0, server: str = ""):
        self.cluster, self.epoch, self.server = cluster, epoch, server
        self.what = f"outgoing {kind} {name!r}"
        self.queue = cluster.lists.setdefault((kind, name, "queue"), [])
        self.processing = cluster.lists.setdefault((kind, name, "processing"), [])
        self.parked = cluster.lists.setdefault((kind, name, "parked"), [])

    def _reach(self, what: str) -> MemoryCluster:
        self.cluster.reach(self.server, f"{what} {self.what}")
        return self.cluster

    def push(self, raw: str) -> None:
        c = self._reach("queueing a message for")
        with c.changed:
            self.queue.insert(0, raw)
            c.changed.notify_all()

    def take(self, timeout: float) -> str | None:
        c = self._reach("waiting for a message for")
        with c.changed:
            if not c.changed.wait_for(lambda: bool(self.queue), timeout=timeout):
                return None
        got = self.take_many(1)
        return got[0] if got else None

    def take_many(self, limit: int, max_bytes: int = 0) -> list[str]:
        if limit <= 0:
            return []
        c = self._reach("taking messages for")
        with c.changed:
            if self.epoch < c.coord.epoch:
                raise stale(self.what, self.epoch)
            moved: list[str] = []
            size = 0
            while self.queue and len(moved) < limit and not (0 < max_bytes <= size):
                moved.append(self.queue.pop())
                self.processing.insert(0, moved[-1])
                size += len(moved[-1].encode("utf-8"))
        return moved

    def settle_and_take(self, done: list[str], limit: int, max_bytes: int = 0) -> list[str]:
        self.done(done)
        return self.take_many(limit, max_bytes)

    def done(self, raws: list[str]) -> None:
        if not raws:
            return
        c = self._reach("acknowledging messages of")
        with c.changed:
            for raw in raws:
                _remove_last(self.processing, raw)

    def leftovers(self) -> list[str]:
        c = self._reach("reading unconfirmed messages of")
        with c.changed:
            return list(reversed(self.processing))

    def park(self, raw: str) -> None:
        c = self._reach("parking a message of")
        with c.changed:
            self.parked.insert(0, raw)
            _remove_last(self.processing, raw)

    def depth(self) -> tuple[int, int]:
        c = self._reach("reading the queue depth of")
        with c.changed:
            return len(self.queue), len(self.processing)

    def parked_count(self) -> int:
        c = self._reach("counting parked messages of")
        with c.changed:
            return len(self.parked)

    def resend_parked(self, limit: int = 10000) -> int:
        c = self._reach("re-sending parked messages of")
        with c.changed:
            moved = min(limit, len(self.parked))
            for _ in range(moved):
                self.queue.insert(0, self.parked.pop())
            c.changed.notify_all()
        return moved


def _remove_last(items: list[str], raw: str) -> None:
    """LREM key -1 raw: the occurrence nearest the tail (the one taken first) goes."""
    for i in range(len(items) - 1, -1, -1):
        if items[i] == raw:
            del items[i]
            return


class MemoryConnectorStats:
    """Connector stats (see zato.coord.connector_stats.RedisConnectorStats)."""

    def __init__(self, cluster: MemoryCluster, server: str = ""):
        self.cluster, self.server = cluster, server

    def write(self, name: str, stats: dict, ttl: float) -> None:
        c = self.cluster
        c.reach(self.server, f"writing stats of connector {name!r}")
        with c.changed:
            c.stats[name] = (json.dumps(stats), c.coord.clock() + ttl)

    def read(self, names: list[str]) -> dict[str, dict]:
        c = self.cluster
        c.reach(self.server, "reading connector stats")
        with c.changed:
            values = [c.alive(c.stats, n) for n in names]
        return parse_stats(names, values)


class MemoryConfigEvents:
    """Config events (see zato.coord.events.RedisConfigEvents)."""

    def __init__(self, cluster: MemoryCluster, server: str = ""):
        self.cluster, self.server = cluster, server

    def publish(self, event: dict) -> int:
        events.check(event)
        return self.publish_raw(json.dumps(event))

    def publish_raw(self, raw: str) -> int:
        """What anyone who can publish to the store can send, well-formed or not."""
        return self.cluster.publish(self.server, EVENTS_CHANNEL, raw, "publishing a config event")

    def listen_forever(
        self,
        on_event: Callable[[dict], None],
        should_stop: Callable[[], bool],
        on_subscribed: Callable[[], None] | None = None,
        on_error: Callable[[CoordError], None] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        backoff: Backoff | None = None,
        poll: float = 0.5,
    ) -> None:
        on_message = events.decoded(on_event)

        def once(subscribed: Callable[[], None]) -> None:
            self.cluster.listen(self.server, EVENTS_CHANNEL, on_message, should_stop, subscribed, poll)

        subscribe.resubscribing(once, EVENTS_CHANNEL, should_stop, on_subscribed, on_error, sleep, backoff)
