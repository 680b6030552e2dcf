"""Readiness (/zato/ready) against liveness (/zato/ping) on a real server: 503 while the
server is loading its deployed services, 200 once they are loaded, 503 again while it drains
after SIGTERM, with /zato/ping answering 200 all along."""

from __future__ import annotations

import signal

import requests

from tests.support import wait_for, zato

SLOW_MODULE = """
import time
from zato.service import Service

time.sleep(2)  # a module that takes a while to import: the server is not ready meanwhile


class Slow(Service):
    name = "test.slow"

    def handle(self):
        self.response.payload = {"loaded": True}
"""


def status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return 0


def test_ready_is_503_while_loading_and_while_draining(quickstart, tmp_path):
    qs = quickstart(servers=1, lb=False, extra_conf={"main": {"drain_seconds": "2", "import_budget": "6"}})
    module = tmp_path / "slow_mod.py"
    module.write_text(SLOW_MODULE)
    zato("deploy", qs.path, str(module))  # stored in the ODB: the server loads it when it starts
    base = qs.server_url("server1")

    starting = qs._start_cli(qs.server_dir("server1"))  # `zato start` itself waits for readiness
    wait_for(lambda: status(base + "/zato/ping") == 200, 30, what="liveness while loading")
    seen = requests.get(base + "/zato/ready", timeout=5)
    assert seen.status_code == 503
    assert "starting" in seen.json()["zato_env"]["details"]
    out, _ = starting.communicate(timeout=60)
    assert starting.returncode == 0, out
    ready = requests.get(base + "/zato/ready", timeout=5)  # `zato start` returned: the server is ready
    assert ready.status_code == 200 and ready.json()["zato_ready_response"] == {"ready": True}
    assert ready.json()["zato_env"]["result"] == "ZATO_OK"

    qs.kill("server1", signal.SIGTERM)
    wait_for(lambda: status(base + "/zato/ready") == 503, 10, what="503 while draining")
    drain = requests.get(base + "/zato/ready", timeout=5).json()["zato_env"]["details"]
    assert "draining" in drain
    assert status(base + "/zato/ping") == 200  # still alive and serving in-flight work
