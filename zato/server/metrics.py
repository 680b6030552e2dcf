"""Prometheus metrics of a server: `GET /metrics`, aggregated over every gunicorn worker.

prometheus-client's multiprocess mode: each worker writes its counters into files under
`work/metrics/` (PROMETHEUS_MULTIPROC_DIR, emptied by the arbiter before it forks, so the
variable is set before any worker imports prometheus_client); a scrape, whichever worker
answers it, sums them all. A worker that exits is marked dead (gunicorn's child_exit hook)
so its live gauges stop counting, and its counters are folded into one file of the ended
workers' totals (zato.server.metrics_files): files do not pile up as workers restart.
The files are memory-mapped and sparse: a page is allocated on the disk when a new value is
first written into it, and on a full disk that write is a SIGBUS that ends the worker (so every
request's first metric of a new service killed its worker). So a new value is created only
while the folder's filesystem has RESERVE_BYTES free; meanwhile new services' metrics are not
counted (logged), and values created before count on. Cluster-wide values (lease,
membership, connectors, outgoing queues) are read from Redis at scrape time, so every worker
and every server agree.
With a [metrics] password in server.conf a scrape must send those credentials (HTTP Basic,
zato.server.wsgi); without one, a server bound beyond loopback says at start that its /metrics
answers anyone (open_warning). Every metric is described in docs/metrics.md.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from zato.common.fs import free_bytes
from zato.config.settings import WILDCARDS, ServerSettings
from zato.server import metrics_files

logger = logging.getLogger("zato.metrics")

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RESERVE_BYTES = 8 * 1024 * 1024  # free space below which no new value is written (a few pages each)
NO_ROOM_LOG_EVERY = 60.0  # seconds between warnings while new values are left out


def multiproc_dir(settings: ServerSettings) -> str:
    return os.path.join(settings.work_dir, "metrics")


def prepare(settings: ServerSettings) -> str:
    """In the arbiter, before the first fork: an empty metrics folder named in the env."""
    path = multiproc_dir(settings)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.close(
        os.open(os.path.join(path, metrics_files.LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    )  # now: the disk has room
    os.environ[MULTIPROC_ENV] = path
    return path


def is_loopback(host: str) -> bool:
    """Whether `host` ([main] host) binds only this machine's loopback: a loopback address, or
    a name every address of which is one (localhost). A wildcard, another address, or a name
    that does not resolve: False."""
    if host in WILDCARDS:
        return False
    try:
        return _loopback_address(host)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(_loopback_address(str(a[4][0]).split("%")[0]) for a in found)


def _loopback_address(text: str) -> bool:
    """ValueError if `text` is no IP address; ::ffff:127.0.0.1 is 127.0.0.1."""
    address = ipaddress.ip_address(text)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def open_warning(settings: ServerSettings) -> str | None:
    """The line a server bound beyond loopback with no [metrics] password logs once at start:
    its /metrics answers anyone who reaches it, and how to close it. None when it need not."""
    if settings.metrics_password or is_loopback(settings.host):
        return None
    wildcard = settings.host in WILDCARDS
    where = f"port {settings.port} at any address of this host" if wildcard else settings.address
    return (
        f"{METRICS_PATH} of server {settings.name} is open to anyone who reaches {where} "
        "(it names the cluster's services, channels and connectors, with their counts): set [metrics] "
        f"password (and username, default {settings.metrics_username}) in {settings.config_file}, and the "
        "same credentials in Prometheus' basic_auth (docs/metrics.md), or bind [main] host to 127.0.0.1"
    )


_unfolded: set[int] = set()  # in the arbiter: ended workers whose files could not be folded yet


def worker_exited(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """gunicorn's child_exit hook: the ended worker's live gauges no longer count, and its
    counters and histograms are folded into the ended workers' totals (metrics_files)."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    _unfolded.add(worker.pid)
    # a pid that a new worker has again: it counts on in the files it found (prometheus-client
    # reads a file it opens), so they are its own now
    _unfolded.difference_update(getattr(server, "WORKERS", None) or ())
    for pid in sorted(_unfolded):
        try:
            metrics_files.fold(folder, pid)
        except (OSError, ValueError) as e:  # its files stay, and count as before
            logger.warning("metrics of ended worker %d not folded, its files stay in %s: %s", pid, folder, e)
        else:
            _unfolded.discard(pid)


class _Idle:
    """Stands for a metric value that could not be created: counts nothing."""

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


IDLE = _Idle()


class Instruments:
    """The per-worker metrics (Zato 4.1's names), created once per worker process.
    `free` tells the bytes left where the values live (None: they live in memory)."""

    def __init__(self, free: Callable[[], int] | None = None) -> None:
        from prometheus_client import Counter, Histogram

        self._free = free
        self._no_room_logged = 0.0
        self._in_flight: Any = None
        self._clients_gone: Any = None

        self.invocations = Counter("zato_service_invocations", "Service invocations, by service", ["service"])
        self.duration = Histogram(
            "zato_service_duration_seconds", "Time a service took to run, by service", ["service"]
        )
        self.channel_requests = Counter(
            "zato_rest_channel_requests", "Requests to REST (HTTP) channels", ["channel", "method", "status"]
        )
        self.requests = Counter(
            "zato_server_requests",
            "HTTP requests served, by kind (health checks and scrapes are not counted)",
            ["kind"],
        )
        self.rejected = Counter(
            "zato_server_rejected_credentials",
            "Requests refused for wrong or missing credentials, by kind",
            ["kind"],
        )
        # labels() costs about as much as the inc() it precedes: the children are kept here
        # (a bounded cache, started over when full: label values come from requests).
        self._children: dict[tuple, Any] = {}

    CHILDREN = 10000

    @property
    def in_flight(self) -> Any:
        """The gauge of requests being served (its value is written when it is created)."""
        if self._in_flight is None:
            if not self._room():
                return IDLE
            from prometheus_client import Gauge

            name, doc = "zato_server_requests_in_flight", "HTTP requests being served now"
            self._in_flight = Gauge(name, doc, multiprocess_mode="livesum")
        return self._in_flight

    @property
    def clients_gone(self) -> Any:
        """The counter of requests whose client left before its whole body arrived (created,
        and so written, on the first one)."""
        if self._clients_gone is None:
            if not self._room():
                return IDLE
            from prometheus_client import Counter

            doc = "Requests whose client disconnected before its whole body arrived"
            self._clients_gone = Counter("zato_server_clients_gone", doc)
        return self._clients_gone

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            if not self._room():
                return IDLE
            if len(self._children) >= self.CHILDREN:
                self._children = {}
            found = self._children[key] = metric.labels(*labels)
        return found

    def _room(self) -> bool:
        """Whether a new value can be written without the disk's SIGBUS; logs when not."""
        if self._free is None:
            return True
        free = self._free()
        if free >= RESERVE_BYTES:
            return True
        now = time.monotonic()
        if not self._no_room_logged or now - self._no_room_logged >= NO_ROOM_LOG_EVERY:
            self._no_room_logged = now
            logger.warning(
                "metrics of services and channels not counted before are left out: %d bytes free "
                "where the metrics files are (%s), under the %d kept free; those counted before go on",
                free,
                os.environ.get(MULTIPROC_ENV),
                RESERVE_BYTES,
            )
        return False


@lru_cache(maxsize=1)
def instruments() -> Instruments:
    folder = os.environ.get(MULTIPROC_ENV)
    return Instruments((lambda: free_bytes(folder) or 0) if folder else None)  # unknown: no room


def observe_service(service: str, started: float) -> None:
    i = instruments()
    i.child(i.invocations, service).inc()
    i.child(i.duration, service).observe(time.perf_counter() - started)


def exposition(
    client: Any,
    cluster: str,
    key: bytes | None = None,
    accept: str = "",
    defined: Callable[[], list[str]] | None = None,
) -> tuple[bytes, str]:
    """(body, content type) of one scrape: every worker's metrics plus the cluster's, in the
    format the scraper's Accept header asks for (OpenMetrics, or Prometheus' text format).
    `defined`: KIND:NAME of the active connectors (ClusterCollector)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    from zato.server.cluster_metrics import ClusterCollector

    registry = CollectorRegistry()
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:  # set by our arbiter; absent only when the app runs bare
        registry.register(metrics_files.WorkersCollector(folder))
    registry.register(ClusterCollector(client, cluster, key, defined))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
