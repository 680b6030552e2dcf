"""The coordination port: what the cluster shares, as the product code uses it, one Protocol
per part. Each has a Redis implementation (what runs) and an in-memory twin on an injected
clock (zato.coord.memory for the lease, zato.coord.memory_cluster for the rest), and one
contract suite runs against both (tests/integration/test_*_contract.py).

    part             Redis                                  in memory
    lease            lease.Lease                            memory.MemoryLease
    membership       membership.RedisMembership             memory_cluster.MemoryMembership
    outgoing queue   queues.OutQueue                        memory_cluster.MemoryOutQueue
    connector stats  connector_stats.RedisConnectorStats    memory_cluster.MemoryConnectorStats
    config events    events.RedisConfigEvents               memory_cluster.MemoryConfigEvents

Every method raises CoordUnavailable when the store cannot be reached and CoordDataError when
it answered with an error (a bug: retrying will not help), both CoordError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from zato.common.errors import CoordError
from zato.common.retry import Backoff
from zato.coord.membership import Member

if TYPE_CHECKING:
    from zato.coord.connector_stats import RedisConnectorStats
    from zato.coord.events import RedisConfigEvents
    from zato.coord.membership import RedisMembership
    from zato.coord.memory_cluster import (
        MemoryConfigEvents,
        MemoryConnectorStats,
        MemoryMembership,
        MemoryOutQueue,
    )
    from zato.coord.queues import OutQueue


class Membership(Protocol):
    """One server entry per live server, kept alive by a heartbeat with a TTL (the supervisor),
    read by the LB controller, the connectors' invoker, the status view and `zato start`."""

    def announce(self, member: Member, ttl: float) -> None:
        """Write this server's signed entry with `ttl` and list it in the index."""

    def refresh(
        self, member: Member, ttl: float, on_replaced: Callable[[Member], None] | None = None
    ) -> bool:
        """The heartbeat: rewrite the entry with `ttl`; True if it was gone (then index it).
        `on_replaced` is told the entry replaced if it was another address's (the name runs twice)."""
        ...

    def index(self, name: str) -> None:
        """List `name` in the index readers go by (after a refresh that rejoined, and now and
        then: a reader that saw the entry expire drops it from the index)."""

    def withdraw(self, name: str, owner: Member | None = None) -> bool:
        """Remove `name` at once; with `owner`, only an entry with its pid and address."""
        ...

    def publish_change(self, name: str, event: str) -> None:
        """Wake the watchers: event is joined | draining | left."""

    def live_servers(self) -> list[Member]:
        """The members whose entries exist, verify and are fresh, by name."""
        ...

    def check_name_free(self, name: str, address: str) -> None:
        """CoordError if a live server other than the one at `address` has `name`."""

    def set_operator_drain(self, name: str, drained: bool) -> None:
        """An operator's hold on `name` in the LB (set or lifted); watchers are woken."""

    def operator_drained(self) -> set[str]: ...

    def watch(
        self,
        on_change: Callable[[dict], None],
        should_stop: Callable[[], bool],
        on_subscribed: Callable[[], None] | None = None,
        poll: float = 0.5,
    ) -> None:
        """on_change({"name", "event"}) per change published while subscribed, until
        should_stop(); on_subscribed runs once subscribed (what came before is not heard)."""


class OutgoingQueue(Protocol):
    """The lists of one outgoing connection: workers push, the one outgoing connector (the
    lease holder's) takes into its processing list, publishes, then marks done; what it took
    and did not mark done is its leftovers, published again by the next run. Taking is fenced:
    with an epoch older than the newest, nothing moves (StaleEpoch)."""

    epoch: int

    def push(self, raw: str) -> None: ...

    def take(self, timeout: float) -> str | None:
        """The oldest waiting message moved to processing; None after `timeout` seconds."""
        ...

    def take_many(self, limit: int, max_bytes: int = 0) -> list[str]:
        """Up to `limit` waiting messages, oldest first, moved to processing without waiting;
        with max_bytes (> 0), the one that brings their size (UTF-8) to it is the last."""
        ...

    def done(self, raws: list[str]) -> None: ...

    def settle_and_take(self, done: list[str], limit: int, max_bytes: int = 0) -> list[str]:
        """done(done), then take_many(limit, max_bytes); the Redis one makes a single round trip."""
        ...

    def leftovers(self) -> list[str]:
        """Taken and not done, oldest first."""
        ...

    def park(self, raw: str) -> None:
        """Out of processing into the parked list (undeliverable: kept for a human)."""

    def depth(self) -> tuple[int, int]:
        """(waiting, in processing)."""
        ...

    def parked_count(self) -> int: ...

    def resend_parked(self, limit: int = 10000) -> int:
        """Move the parked messages back behind the waiting ones; how many moved."""
        ...


class ConnectorStats(Protocol):
    """Each connector process writes its stats with a TTL; the status view reads them."""

    def write(self, name: str, stats: dict, ttl: float) -> None: ...

    def read(self, names: list[str]) -> dict[str, dict]:
        """Stats per name; names with no live stats are left out."""
        ...


class ConfigEvents(Protocol):
    """Config-change events ({"kind": ..., ...}; see zato.coord.events): the admin API, the CLI
    and the dashboard publish, every worker and supervisor listens. A prompt, not the truth:
    what is published while nobody listens is lost, so listeners reconcile from the ODB in
    on_subscribed."""

    def publish(self, event: dict) -> int:
        """Send `event` to the listeners subscribed now; how many. ValueError (nothing sent)
        without a "kind"."""
        ...

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
        """on_event(event) per event published while subscribed, in order, until should_stop();
        a malformed one is logged and skipped. on_subscribed runs after every (re)subscription.
        When the store fails, on_error (default: a warning) hears the CoordError; a handler's
        exception is logged; either way it sleeps (backoff) and subscribes again
        (zato.coord.subscribe.resubscribing)."""


if TYPE_CHECKING:  # mypy: each implementation has every method of its part, same signatures

    def _conform(
        a: RedisMembership,
        b: MemoryMembership,
        c: OutQueue,
        d: MemoryOutQueue,
        e: RedisConnectorStats,
        f: MemoryConnectorStats,
        g: RedisConfigEvents,
        h: MemoryConfigEvents,
    ) -> tuple[Membership, Membership, OutgoingQueue, OutgoingQueue, ConnectorStats, ConnectorStats,
               ConfigEvents, ConfigEvents]:  # fmt: skip
        return a, b, c, d, e, f, g, h
