"""zato.server.metrics_files: an ended worker's metric files folded into one, on real
prometheus-client multiprocess files written by real processes (no server, no socket)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from zato.server import metrics_files

WORKER = """
import os, sys
from prometheus_client import Counter, Histogram
calls = Counter("t_calls", "Calls", ["service"])
took = Histogram("t_seconds", "Time taken", ["service"])
for service, n in (("a", int(sys.argv[1])), (sys.argv[2], 2)):
    for i in range(n):
        calls.labels(service).inc()
        took.labels(service).observe(0.003 * i)
print(os.getpid())
"""


def worker(path: str, count: int, other: str) -> int:
    """A process that counts as a worker does, then ends: its pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": path}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(count), other], env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def totals(path: str) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(metrics_files.WorkersCollector(path))
    text = openmetrics_latest(registry).decode()  # the OpenMetrics parser checks every family's shape
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert generate_latest(registry)  # and the text format takes them too
    return out


def pids(path: str) -> set[int]:
    return {int(n.rsplit("_", 1)[1][:-3]) for n in os.listdir(path) if n.endswith(".db")}


def test_ended_workers_are_folded_into_one_file_and_the_totals_hold(tmp_path):
    path = str(tmp_path)
    first, second = worker(path, 5, "only-first"), worker(path, 7, "only-second")
    before = totals(path)
    assert before[("t_calls_total", (("service", "a"),))] == 12
    assert before[("t_seconds_count", (("service", "a"),))] == 12
    assert metrics_files.fold(path, first) == 2  # its counter and histogram files
    assert pids(path) == {second}
    assert totals(path) == before
    third = worker(path, 1, "only-first")  # a replacement counts on top of the folded values
    assert metrics_files.fold(path, second) == 2
    assert metrics_files.fold(path, third) == 2
    assert metrics_files.fold(path, third) == 0  # nothing left of it
    after = totals(path)
    assert pids(path) == set()
    assert after[("t_calls_total", (("service", "a"),))] == 13
    assert after[("t_calls_total", (("service", "only-first"),))] == 4
    assert after[("t_seconds_bucket", (("le", "+Inf"), ("service", "only-second")))] == 2
    assert set(os.listdir(path)) == {metrics_files.FOLDED, metrics_files.LOCK, metrics_files.FOLDING}


def test_a_scrape_holding_the_files_leaves_the_worker_unfolded_and_counted(tmp_path, monkeypatch):
    """The arbiter does not hang on a worker stopped half-way through a scrape: it gives up
    after FOLD_WAIT, the worker's files stay and count, and a later fold takes them."""
    path = str(tmp_path)
    pid = worker(path, 3, "b")
    before = totals(path)
    monkeypatch.setattr(metrics_files, "FOLD_WAIT", 0.2)
    with metrics_files.locked(path, fcntl.LOCK_SH), pytest.raises(BlockingIOError):
        metrics_files.fold(path, pid)
    assert pids(path) == {pid}
    assert totals(path) == before
    assert metrics_files.fold(path, pid) == 2
    assert totals(path) == before
