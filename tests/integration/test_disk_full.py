"""A server whose disk fills up: its folder (logs, metrics files, SQLite ODB) on a small tmpfs
that the test fills to the last byte. Requests go on being served by the same workers.

Before: prometheus-client's metrics files are memory-mapped and sparse, so the first request
of a service not served before wrote into a page the full disk could not hold, and its worker
died of SIGBUS; the one gunicorn started instead died on the same request (every request
answered 504 through the LB, while /zato/ping still answered 200 and kept the server in it).
And `zato start` of a member on that disk said it exited with code 1, showing old log lines:
the start had failed on its pidfile (ENOSPC) and could not write its log."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Quickstart, wait_for, zato

MODULE = """
from zato.service import Service


class Before(Service):
    name = "disk.before"

    def handle(self):
        self.response.payload = {"served": "before"}


class After(Service):
    name = "disk.after"

    def handle(self):
        self.response.payload = {"served": "after"}
"""


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "disk"
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:  # root in CI and here: never skipped
        pytest.fail(f"cannot mount a tmpfs for the full disk: {done.stderr.decode().strip()}", pytrace=False)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder) -> str:
    """Write a file until the filesystem refuses a byte more."""
    path = os.path.join(folder, "filler")
    with open(path, "wb", buffering=0) as f:
        block = b"\0" * (1 << 20)
        while block:
            try:
                f.write(block)
            except OSError:
                block = block[: len(block) // 2]
    return path


def workers(arbiter: int) -> set[int]:
    with open(f"/proc/{arbiter}/task/{arbiter}/children") as f:
        children = [int(p) for p in f.read().split()]
    found = set()
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"gunicorn: worker" in f.read():
                    found.add(pid)
        except OSError:
            continue
    return found


def invocations(base: str, service: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "zato_service_invocations_total" and s.labels == {"service": service}:
                return s.value
    return 0.0


def test_a_server_whose_disk_is_full_serves_with_the_same_workers(small_disk):
    qs = Quickstart(small_disk, servers=1, workers=1)
    try:
        qs.create()
        qs.start()
        qs.deploy("diskmod", MODULE)
        qs.open_channels("disk", ["before", "after"])
        base = qs.server_url("server1")
        wait_for(lambda: requests.get(f"{base}/disk/after", timeout=5).ok, 30, what="channels served")
        # a new worker: only disk.before's metrics exist in it before the disk fills
        first = workers(qs.pid("server1"))
        os.kill(next(iter(first)), 15)
        wait_for(lambda: len(workers(qs.pid("server1")) - first) == 1, 30, what="the worker replaced")
        wait_for(lambda: requests.get(f"{base}/disk/before", timeout=5).ok, 30, what="the new worker")
        serving = workers(qs.pid("server1"))
        counted = invocations(base, "disk.after")  # by the worker before

        filler = fill(small_disk)
        assert os.statvfs(small_disk).f_bavail == 0
        for url in (f"{base}/disk/before", f"{base}/disk/after", f"{qs.lb_url}/disk/after"):
            r = requests.get(url, timeout=10)
            assert r.status_code == 200, f"{url}: {r.status_code} {r.text}"
        assert r.json() == {"served": "after"}
        assert workers(qs.pid("server1")) == serving, "a worker died on the full disk"
        # a member started now could not write its pidfile, nor its log why: refused, saying so
        started = zato("start", qs.dashboard_dir, check=False)
        assert started.returncode == 1
        assert f"dashboard: the disk of {qs.dashboard_dir} is full (0 bytes free)" in started.stderr

        os.remove(filler)
        assert requests.get(f"{base}/disk/after", timeout=10).json() == {"served": "after"}
        # not counted while the disk was full (the warning saying so could not be written
        # either: the log is on that disk), counted again once there is room
        assert invocations(base, "disk.after") == counted + 1
    finally:
        qs.close()
