"""The two worlds the coordination-port contract suites run in: one cluster on the real Redis
(its own cluster name, keys deleted afterwards) and one in memory on a fake clock. Each gives
the handles the product code would use (membership, outgoing queues, connector stats, config
events, leases)
plus what only a test does: let a TTL run out, write to the store as an attacker would, and
make a handle that cannot reach the store (cut_off=True)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import redis

from tests.integration.test_lease_contract import MemoryWorld, RedisWorld
from tests.support import wait_for
from zato.config.settings import RedisSettings
from zato.coord.client import connect
from zato.coord.connector_stats import RedisConnectorStats
from zato.coord.events import RedisConfigEvents
from zato.coord.keys import Keys
from zato.coord.membership import RedisMembership
from zato.coord.memory_cluster import (
    MemoryCluster,
    MemoryConfigEvents,
    MemoryConnectorStats,
    MemoryMembership,
    MemoryOutQueue,
)
from zato.coord.port import ConfigEvents, ConnectorStats, Membership, OutgoingQueue
from zato.coord.queues import OutQueue
from zato.coord.signing import member_key

SECRET = "a test secret"
OWN_KEY = b"marker: sign with the world's own cluster key"
CUT_OFF = "cut-off"  # the in-memory server partitioned from the store


class RedisClusterWorld(RedisWorld):
    """Handles made with cut_off=True talk to a Redis nobody listens at."""

    def __init__(self) -> None:
        super().__init__()
        self.key = member_key(SECRET, self.cluster)
        self.dead = connect(RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.5))

    def _client(self, cut_off: bool) -> redis.Redis:
        return self.dead if cut_off else self.client

    def membership(self, key: bytes | None = OWN_KEY, cut_off: bool = False) -> Membership:
        return RedisMembership(self._client(cut_off), self.cluster, self.key if key is OWN_KEY else key)

    def queue(self, name: str, epoch: int = 0, cut_off: bool = False) -> OutgoingQueue:
        return OutQueue(self._client(cut_off), self.cluster, "amqp", name, epoch)

    def stats(self, cut_off: bool = False) -> ConnectorStats:
        return RedisConnectorStats(self._client(cut_off), self.cluster)

    def events(self, cut_off: bool = False) -> ConfigEvents:
        return RedisConfigEvents(self._client(cut_off), self.cluster)

    def publish_raw_event(self, raw: str) -> None:
        self.client.publish(Keys(self.cluster).events, raw)

    def wall(self) -> float:
        return time.time()

    def outlive(self, ttl: float, gone: Callable[[], object]) -> None:  # noqa: ARG002 - as MemoryClusterWorld
        """Poll (with a deadline) until `gone()` says what was written with `ttl` expired."""
        wait_for(gone, timeout=10, interval=0.02, what="a key to expire")

    def write_member_entry(self, name: str, raw: str, ttl: float) -> None:
        keys = Keys(self.cluster)
        self.client.set(keys.member(name), raw, px=int(ttl * 1000))
        self.client.sadd(keys.members, name)

    def close(self) -> None:
        super().close()
        self.dead.close()


class MemoryClusterWorld(MemoryWorld):
    """Handles made with cut_off=True belong to a server partitioned from the store."""

    def __init__(self) -> None:
        super().__init__()
        self.key = member_key(SECRET, "memory")
        wall0 = time.time()
        self.store = MemoryCluster(coord=self.coord, wall=lambda: wall0 + self.now)
        self.coord.partition(CUT_OFF)

    def membership(self, key: bytes | None = OWN_KEY, cut_off: bool = False) -> Membership:
        key = self.key if key is OWN_KEY else key
        return MemoryMembership(self.store, key, CUT_OFF if cut_off else "")

    def queue(self, name: str, epoch: int = 0, cut_off: bool = False) -> OutgoingQueue:
        return MemoryOutQueue(self.store, "amqp", name, epoch, CUT_OFF if cut_off else "")

    def stats(self, cut_off: bool = False) -> ConnectorStats:
        return MemoryConnectorStats(self.store, CUT_OFF if cut_off else "")

    def events(self, cut_off: bool = False) -> ConfigEvents:
        return MemoryConfigEvents(self.store, CUT_OFF if cut_off else "")

    def publish_raw_event(self, raw: str) -> None:
        MemoryConfigEvents(self.store).publish_raw(raw)

    def wall(self) -> float:
        return self.store.wall()

    def outlive(self, ttl: float, gone: Callable[[], object]) -> None:
        self.now += ttl + 0.001
        assert gone(), "still there after its TTL"

    def write_member_entry(self, name: str, raw: str, ttl: float) -> None:
        self.store.write_entry(name, raw, ttl)

    def lose_data(self) -> None:
        self.store.lose_data()


def open_world(kind: str) -> Iterator[RedisClusterWorld | MemoryClusterWorld]:
    """For a fixture parametrized over "redis" and "memory": the world, closed afterwards."""
    w = RedisClusterWorld() if kind == "redis" else MemoryClusterWorld()
    try:
        yield w
    finally:
        w.close()
