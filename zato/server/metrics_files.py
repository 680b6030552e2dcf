"""The workers' metric files (prometheus-client's multiprocess mode): what a scrape reads, and
what the arbiter keeps of a worker that ended.

Each worker writes its values into files named after its pid (`counter_PID.db`,
`histogram_PID.db`, `gauge_livesum_PID.db`). prometheus-client keeps an ended worker's counter
and histogram files so that its counts stay in the totals: a worker that crash-loops left one
more pair at each restart, and every scrape read them all. So when a worker ends, the arbiter
folds its counters and histograms into FOLDED (one file: the totals of every ended worker) and
deletes its files; a scrape adds FOLDED to what the live workers' files say. Folded values are
prometheus-client's own sums (MultiProcessCollector.collect over the ended worker's files), so
counters, histogram buckets, `_sum` and `_count` add up as they did before.

A lock file orders the two: a fold holds it exclusively, a scrape's read of the files shared, so
no scrape sees a worker's counts twice or not at all (a counter never goes back). Each process
opens the lock file itself: flock locks belong to an open file, which a fork would share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from zato.common.fs import atomic_write

FOLDED = "ended-workers.json"  # not *.db: prometheus-client reads *.db files only
LOCK = "lock"
FOLDING = "folding"  # a sub-folder: the files of the worker being folded, out of the scrapes' way
FOLDED_KINDS = ("counter", "histogram", "summary")  # one file per process; gauges are marked dead

Sums = dict[str, dict[str, Any]]  # name: {"type", "help", "samples": [[sample, labels, value]...]}


FOLD_WAIT = 2.0  # seconds the arbiter waits for scrapes to finish reading before it folds later


@contextlib.contextmanager
def locked(path: str, how: int, wait: float | None = None) -> Iterator[None]:
    """The lock file held `how` (LOCK_SH, LOCK_EX); BlockingIOError once `wait` seconds passed
    (the arbiter must not hang on a worker stopped half-way through a scrape)."""
    fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if wait is None:
            fcntl.flock(fd, how)
        else:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, how | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BlockingIOError(f"a scrape held the metrics files for {wait:g} s") from None
                    time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def fold(path: str, pid: int) -> int:
    """In the arbiter, once worker `pid` has ended: its counters and histograms are added to
    FOLDED and its files deleted. Returns how many files were folded. An OSError (a full disk:
    FOLDED cannot be written; a scrape that held the files for FOLD_WAIT) leaves its files where
    they were: scrapes read them as before, and the arbiter folds them at the next exit."""
    from prometheus_client.multiprocess import MultiProcessCollector

    names = [f"{kind}_{pid}.db" for kind in FOLDED_KINDS]
    names = [n for n in names if os.path.exists(os.path.join(path, n))]
    if not names:
        return 0
    scratch = os.path.join(path, FOLDING)
    with locked(path, fcntl.LOCK_EX, FOLD_WAIT):
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        moved: list[str] = []
        try:
            for name in names:
                os.replace(os.path.join(path, name), os.path.join(scratch, name))
                moved.append(name)
            sums = read_folded(path)
            add(sums, MultiProcessCollector(None, path=scratch).collect())
            atomic_write(os.path.join(path, FOLDED), json.dumps(sums, separators=(",", ":")), 0o600)
        except BaseException:
            for name in moved:
                os.replace(os.path.join(scratch, name), os.path.join(path, name))
            raise
        for name in moved:
            os.unlink(os.path.join(scratch, name))
    return len(moved)


def read_folded(path: str) -> Sums:
    try:
        with open(os.path.join(path, FOLDED), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def _key(name: str, labels: dict) -> tuple:
    return name, tuple(sorted(labels.items()))


def add(sums: Sums, metrics: Iterable[Any]) -> None:
    """Adds the samples of `metrics` (prometheus-client's Metric families) into `sums`."""
    for m in metrics:
        entry = sums.setdefault(m.name, {"type": m.type, "help": m.documentation, "samples": []})
        _add_rows(entry["samples"], ((s.name, s.labels, s.value) for s in m.samples))


def _add_rows(into: list, rows: Iterable) -> None:
    """Adds each (sample name, labels, value) to the row of `into` with its name and labels, or
    as a new row after the others (so the rows of one label set stay together, in order)."""
    at = {_key(row[0], row[1]): row for row in into}
    for name, labels, value in rows:
        row = at.get(_key(name, labels))
        if row is None:
            row = at[_key(name, labels)] = [name, dict(labels), value]
            into.append(row)
        else:
            row[2] += value


class WorkersCollector:
    """A scrape's view of the workers: the live workers' files plus the ended workers' FOLDED."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric
        from prometheus_client.multiprocess import MultiProcessCollector

        with locked(self.path, fcntl.LOCK_SH):
            live = MultiProcessCollector(None, path=self.path).collect()
            folded = read_folded(self.path)
        sums: Sums = {}
        add(sums, live)
        for name, entry in folded.items():
            if name in sums:
                _add_rows(sums[name]["samples"], entry["samples"])
            else:
                sums[name] = entry
        out = []
        for name, entry in sums.items():
            family = Metric(name, entry["help"], entry["type"])
            for sample, labels, value in entry["samples"]:
                family.add_sample(sample, labels, value)
            out.append(family)
        return out
