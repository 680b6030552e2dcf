"""Prometheus metrics of a server: `GET /metrics`, aggregated over every gunicorn worker.

prometheus-client's multiprocess mode: each worker writes its counters into files under
`work/metrics/` (PROMETHEUS_MULTIPROC_DIR, emptied by the arbiter before it forks, so the
variable is set before any worker imports prometheus_client); a scrape, whichever worker
answers it, sums them all. A worker that exits is marked dead (gunicorn's child_exit hook)
so its live gauges stop counting. Cluster-wide values (lease, membership, connectors,
outgoing queues) are read from Redis at scrape time, so every worker and every server agree.
Every metric is described in docs/metrics.md.
"""

from __future__ import annotations

import os
import shutil
import time
from functools import lru_cache
from typing import Any

from zato.config.settings import ServerSettings

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir(settings: ServerSettings) -> str:
    return os.path.join(settings.work_dir, "metrics")


def prepare(settings: ServerSettings) -> str:
    """In the arbiter, before the first fork: an empty metrics folder named in the env."""
    path = multiproc_dir(settings)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.environ[MULTIPROC_ENV] = path
    return path


def worker_exited(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: the dead worker's live gauges no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class Instruments:
    """The per-worker metrics (Zato 4.1's names), created once per worker process."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.invocations = Counter("zato_service_invocations", "Service invocations, by service", ["service"])
        self.duration = Histogram(
            "zato_service_duration_seconds", "Time a service took to run, by service", ["service"]
        )
        self.channel_requests = Counter(
            "zato_rest_channel_requests", "Requests to REST (HTTP) channels", ["channel", "method", "status"]
        )
        self.in_flight = Gauge(
            "zato_server_requests_in_flight", "HTTP requests being served now", multiprocess_mode="livesum"
        )
        self.requests = Counter("zato_server_requests", "HTTP requests served, every path", ["kind"])
        # labels() costs about as much as the inc() it precedes: the children are kept here
        # (a bounded cache, started over when full: label values come from requests).
        self._children: dict[tuple, Any] = {}

    CHILDREN = 10000

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            if len(self._children) >= self.CHILDREN:
                self._children = {}
            found = self._children[key] = metric.labels(*labels)
        return found


@lru_cache(maxsize=1)
def instruments() -> Instruments:
    return Instruments()


def observe_service(service: str, started: float) -> None:
    i = instruments()
    i.child(i.invocations, service).inc()
    i.child(i.duration, service).observe(time.perf_counter() - started)


def exposition(client: Any, cluster: str, key: bytes | None = None) -> tuple[bytes, str]:
    """(body, content type) of one scrape: every worker's metrics plus the cluster's."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    from zato.server.cluster_metrics import ClusterCollector

    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):  # set by our arbiter; absent only when the app runs bare
        multiprocess.MultiProcessCollector(registry)
    registry.register(ClusterCollector(client, cluster, key))
    return generate_latest(registry), CONTENT_TYPE_LATEST
