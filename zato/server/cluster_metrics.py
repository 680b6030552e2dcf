"""Cluster-wide Prometheus metrics read from Redis at scrape time: the lease, the takeover
log, membership, the holder's connectors, the outgoing queues and invoke_async's queue. Redis down
is a value (`zato_redis_up 0`), never a failed scrape. Every active connector of the ODB has a
`zato_connector_state` series, NOT_RUNNING while no holder runs it (during a takeover)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from zato.common.errors import CoordError
from zato.coord import queues, status, takeovers
from zato.coord.queues import OutQueue
from zato.coord.status import NOT_RUNNING, not_running


def outgoing_of(child: dict) -> tuple[str, str] | None:
    """(queue kind, connection name) of an outgoing connector child ("amqp-outgoing:orders"):
    ("amqp", "orders"), as zato.coord.queues names the queue."""
    kind, _, name = str(child.get("name") or "").partition(":")
    if not kind.endswith("-outgoing") or not name:
        return None
    return kind[: -len("-outgoing")], name


def number(value: object) -> float | None:
    """`value` if it is a number (not a bool), else None. The supervisor status and the
    connectors' stats are plain JSON in Redis: a counter of another type (a Redis writer's, a
    damaged entry) made the exposition raise, and every scrape was a 500 while it stayed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


class ClusterCollector:
    def __init__(
        self,
        client: Any,
        cluster: str,
        key: bytes | None = None,
        defined: Callable[[], list[str]] | None = None,
    ):
        self.client, self.cluster, self.key = client, cluster, key  # key: verifies member entries
        self.defined = defined  # KIND:NAME of every active connector definition in the ODB

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        view = status.collect(self.client, self.cluster, key=self.key)
        up = GaugeMetricFamily("zato_redis_up", "1 if this server could read the cluster state from Redis")
        up.add_metric([], 0 if view["errors"] else 1)
        yield up
        if view["errors"]:
            return
        lease = view["lease"] or {}
        epoch = GaugeMetricFamily("zato_lease_epoch", "The newest fencing epoch of the lease")
        epoch.add_metric([], lease.get("newest_epoch") or 0)
        yield epoch
        holder = GaugeMetricFamily("zato_lease_holder", "1 for the lease holder", labels=["server"])
        if lease.get("holder"):
            holder.add_metric([lease["holder"]], 1)
        yield holder
        try:
            count = takeovers.count(self.client, self.cluster)
        except CoordError:
            count = 0
        yield CounterMetricFamily("zato_lease_takeovers", "Acquisitions of the lease", count)
        yield from self._members(view["servers"])
        yield from self._connectors(view["children"])
        calls = GaugeMetricFamily(
            "zato_async_calls", "invoke_async calls waiting in the queue, and parked", labels=["list"]
        )
        for which in ("queued", "parked"):
            calls.add_metric([which], (view.get("async") or {}).get(which) or 0)
        yield calls

    @staticmethod
    def _members(servers: list[dict]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        live = GaugeMetricFamily("zato_cluster_servers_live", "Servers with a live membership key")
        live.add_metric([], sum(1 for s in servers if s.get("live")))
        yield live
        member = GaugeMetricFamily(
            "zato_cluster_server_live", "1 per live server, with its role", labels=["server", "role", "state"]
        )
        for s in servers:
            if s.get("live"):
                member.add_metric([s["name"], s.get("role") or "", s.get("state") or ""], 1)
        yield member

    def _connectors(self, children: list[dict]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["connector", "kind"]
        state = GaugeMetricFamily(
            "zato_connector_state", "1 for the state each connector is in", labels=[*labels, "state"]
        )
        activity = GaugeMetricFamily(
            "zato_connector_activity",
            "1 for what each connector says it is doing (running, reconnecting, blocked...)",
            labels=[*labels, "activity"],
        )
        counters = {
            key: CounterMetricFamily(f"zato_connector_{key}", help_, labels=labels)
            for key, help_ in (
                ("restarts", "Restarts of a connector process (from 0 after a takeover or an edit)"),
                ("messages_in", "Messages a connector took in (since its process started)"),
                ("messages_out", "Messages a connector delivered (since its process started)"),
                ("failures", "Failed deliveries of a connector (since its process started)"),
                ("parked", "Messages a connector parked (since its process started)"),
            )
        }
        parking = GaugeMetricFamily(
            "zato_channel_parking_queue",
            "Messages in an AMQP channel's parking queue now, as the broker counts them",
            labels=labels,
        )
        # The connector's own `connector` and `kind` ("amqp-outgoing:orders", "amqp-outgoing"),
        # as every connector metric has them, so a query joins them on (connector, kind); the
        # queue's kind ("amqp") before made no join possible. `connection`: the name alone.
        depth = GaugeMetricFamily(
            "zato_outgoing_queue_depth",
            "Messages in an outgoing connection's Redis lists",
            labels=[*labels, "connection", "list"],
        )
        for c in children:
            key = [str(c.get("name")), str(c.get("kind"))]
            state.add_metric([*key, str(c.get("state"))], 1)
            if c.get("activity"):
                activity.add_metric([*key, str(c["activity"])], 1)
            for name, family in counters.items():  # unknown (its statistics expired: silent) is no
                value = number(c.get(name))  # sample, not a 0 that Prometheus takes for a reset
                if value is not None:
                    family.add_metric(key, value)
            if number(c.get("parking_queue")) is not None:
                parking.add_metric(key, c["parking_queue"])
        for name in not_running(children, self.defined() if self.defined else ()):
            state.add_metric([name, name.partition(":")[0], NOT_RUNNING], 1)  # a state all the same
        for out in self._outgoing(children):
            self._depth(depth, *out)
        yield from (state, activity, *counters.values(), parking, depth)

    def _outgoing(self, children: list[dict]) -> list[tuple[str, str]]:
        """(queue kind, name) of the holder's outgoing connectors, then of every other listed
        outgoing queue: an inactive connection's messages wait with no connector to show them."""
        running = [out for out in map(outgoing_of, children) if out is not None]
        try:
            listed = queues.registered(self.client, self.cluster)
        except CoordError:
            listed = []
        return running + [out for out in listed if out not in running]

    def _depth(self, family: Any, kind: str, name: str) -> None:
        """The lists of queue kind `kind` ("amqp"), labelled with its connector's kind."""
        queue = OutQueue(self.client, self.cluster, kind, name)
        try:
            waiting, processing = queue.depth()
            parked = queue.parked_count()
        except CoordError:
            return
        for which, value in (("waiting", waiting), ("processing", processing), ("parked", parked)):
            family.add_metric([f"{kind}-outgoing:{name}", f"{kind}-outgoing", name, which], value)
