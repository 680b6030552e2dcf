"""A module dropped into a real server's pickup/ folder while it is still being written (cp of
a large file, scp over a slow link): before, the part written so far, if it compiled, was
deployed at the next poll and the file moved to processed/ under the writer, so the rest of
the write landed there and never reached the cluster. Now a file is deployed once it stayed
unchanged for [main] pickup_quiet seconds."""

from __future__ import annotations

import os
import time

import requests

from tests.support import cluster_name, wait_for

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
