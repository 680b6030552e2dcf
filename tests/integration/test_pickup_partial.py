"""A module dropped into a real server's pickup/ folder while it is still being written (cp of
a large file, scp over a slow link): before, the part written so far, if it compiled, was
deployed at the next poll and the file moved to processed/ under the writer, so the rest of
the write landed there and never reached the cluster. Now a file is deployed once it stayed
unchanged for [main] pickup_quiet seconds, and one written to while it is checked is deployed
again once it is quiet."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import requests

from tests.support import cleanup_redis, cluster_name, sqlite_server, wait_for
from zato.odb import api as odb_api
from zato.server.pickup import PickupDir

QUIET = 10  # [main] pickup_quiet of the test's server: longer than the writer's pause below
PAUSE = 5  # at most; before, the partial file was deployed and moved within it

FIRST = """from zato.server.service import Service


class First(Service):
    name = "halves.first"

    def handle(self):
        self.response.payload = {"part": 1}
"""

SECOND = """

class Second(Service):
    name = "halves.second"

    def handle(self):
        self.response.payload = {"part": 2}
"""


def test_a_module_still_being_written_is_deployed_whole(quickstart):
    qs = quickstart(
        servers=1, lb=False, cluster=cluster_name("halves"), extra_conf={"main": {"pickup_quiet": QUIET}}
    )
    qs.start()
    pickup = os.path.join(qs.server_dir("server1"), "pickup")
    written, processed = os.path.join(pickup, "halves.py"), os.path.join(pickup, "processed", "halves.py")
    with open(written, "w") as f:
        f.write(FIRST)  # compiles on its own
        f.flush()
        deadline = time.monotonic() + PAUSE  # the writer stalls mid-file
        while time.monotonic() < deadline and not os.path.exists(processed):
            time.sleep(0.1)
        f.write(SECOND)
    wait_for(lambda: os.path.exists(processed), 60, what="halves.py deployed and moved to processed/")
    assert not os.path.exists(written)
    with open(processed) as f:
        assert f.read() == FIRST + SECOND  # nothing lost
    qs.open_channels("halves", ["first", "second"])
    base = qs.server_url("server1")
    wait_for(lambda: requests.get(f"{base}/halves/first", timeout=10).ok, 20, what="the channels applied")
    r = requests.get(f"{base}/halves/second", timeout=10)  # before: 404, no such service
    assert (r.status_code, r.json()) == (200, {"part": 2}), r.text
    log = qs.server_logs()
    assert log.count("pickup: halves.py: ") == 1, log  # deployed once: the whole file


def test_a_module_written_to_while_it_is_checked_is_deployed_as_it_ends(tmp_path, caplog):
    """The arbiter's pickup on a real ODB (SQLite) and Redis, with no quiet period: a module
    grows while its load check runs (the writer paused longer than pickup_quiet). Before, the
    version read was stored and the file, grown since, moved to processed/ as deployed."""
    cluster = cluster_name("grown")
    odb, settings = sqlite_server(tmp_path, cluster)
    pickup = PickupDir(dataclasses.replace(settings, pickup_quiet=0.0), interval=0.05)
    written = os.path.join(settings.pickup_dir, "halves.py")
    processed = os.path.join(settings.pickup_dir, "processed", "halves.py")
    os.makedirs(settings.pickup_dir)
    try:
        with open(written, "w") as f:
            f.write(FIRST)
        deadline = time.monotonic() + 30
        while pickup.job is None and time.monotonic() < deadline:
            pickup.tick()
            time.sleep(0.05)
        assert pickup.job is not None  # its load check runs in a child
        with open(written, "a") as f:
            f.write(SECOND)
        caplog.set_level(logging.INFO, "zato.pickup")
        while not os.path.exists(processed) and time.monotonic() < deadline:
            pickup.tick()
            time.sleep(0.05)
        assert [(m.name, m.source) for m in odb_api.list_modules(odb, cluster)] == [
            ("halves", FIRST + SECOND)
        ]
        assert "halves.py changed while it was deployed; deploying it again" in caplog.text
    finally:
        pickup.close()
        odb.dispose()
        cleanup_redis(cluster)
