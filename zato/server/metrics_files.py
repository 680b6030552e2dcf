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
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from zato.common import jsonenc
from zato.common.fs import atomic_write

logger = logging.getLogger("zato.metrics")

FOLDED = "ended-workers.json"  # not *.db: prometheus-client reads *.db files only
SET_ASIDE = FOLDED + ".bad"  # a FOLDED the arbiter did not write (see read_folded)
BAD_LOG_EVERY = 60.0  # s between a worker's warnings that scrapes leave a bad FOLDED out
METRIC_TYPES = ("counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset")
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
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
            try:
                sums = read_folded(path)
            except ValueError as e:  # not the arbiter's: set aside, the ended workers count again from 0
                os.replace(os.path.join(path, FOLDED), os.path.join(path, SET_ASIDE))
                logger.warning("%s; set aside as %s, ended workers are counted from now on", e, SET_ASIDE)
                sums = {}
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
    """FOLDED's sums ({} if there is none); ValueError naming the file when it is not what
    fold() writes (written by hand, by another version, damaged): before, its first value of
    another shape failed every scrape (a 500) and every fold (the ended workers' files piled up
    again)."""
    where = os.path.join(path, FOLDED)
    try:
        with open(where, encoding="utf-8") as f:
            sums = jsonenc.loads(f.read())
    except FileNotFoundError:
        return {}
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{where} is not the ended workers' totals: {e}") from None
    why = _malformed(sums)
    if why:
        raise ValueError(f"{where} is not the ended workers' totals: {why}")
    return sums


def _malformed(sums: Any) -> str:
    """Why `sums` is not what fold() writes ({name: {"type", "help", "samples": [[sample name,
    {label: value}, number]...]}}); "" if it is."""
    if not isinstance(sums, dict):
        return f"a {type(sums).__name__}, not an object"
    for name, entry in sums.items():
        if not (
            _NAME_RE.fullmatch(name)
            and isinstance(entry, dict)
            and entry.get("type") in METRIC_TYPES
            and isinstance(entry.get("help"), str)
            and isinstance(entry.get("samples"), list)
        ):
            return f"metric {name!r} is not a name with its type, help and samples"
        for row in entry["samples"]:
            if not (
                isinstance(row, list)
                and len(row) == 3
                and isinstance(row[0], str)
                and _NAME_RE.fullmatch(row[0])
                and isinstance(row[1], dict)
                and all(_NAME_RE.fullmatch(k) and isinstance(v, str) for k, v in row[1].items())
                and isinstance(row[2], (int, float))
                and not isinstance(row[2], bool)
            ):
                return f"a sample of {name!r} is not [name, labels, number]: {str(row)[:100]}"
    return ""


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
        self._bad_logged = 0.0

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric
        from prometheus_client.multiprocess import MultiProcessCollector

        with locked(self.path, fcntl.LOCK_SH):
            live = MultiProcessCollector(None, path=self.path).collect()
            try:
                folded = read_folded(self.path)
            except ValueError as e:  # left out: the next fold sets it aside
                folded = {}
                if time.monotonic() - self._bad_logged >= BAD_LOG_EVERY:
                    self._bad_logged = time.monotonic()
                    logger.warning("%s; scrapes leave it out until a worker ends and it is set aside", e)
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
