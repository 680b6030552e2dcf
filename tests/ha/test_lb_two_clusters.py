"""Two quickstart clusters on one machine behind one external HAProxy (docs/two-clusters.md):
stopping one whole cluster fails no request."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from tests.integration.test_lb_support import Load
from tests.support import Quickstart, free_port, wait_for
from zato.lb.external import render_external
from zato.lb.status import describe

LB_TIMINGS = {"lb:haproxy": {"check_inter_ms": 300}}


@pytest.fixture
def clusters(tmp_path):
    made = []
    try:
        for _ in range(2):
            made.append(Quickstart(tmp_path, servers=1, extra_conf=LB_TIMINGS).create())
        yield made
    finally:
        for qs in made:
            qs.close()


@pytest.fixture
def external(tmp_path, clusters):
    port = free_port()
    cfg = tmp_path / "external-haproxy.cfg"
    cfg.write_text(render_external(f"127.0.0.1:{port}", [f"127.0.0.1:{qs.lb_port}" for qs in clusters], 300))
    subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], check=True)
    with open(tmp_path / "external-haproxy.log", "ab") as log:
        proc = subprocess.Popen(["haproxy", "-W", "-db", "-f", str(cfg)], stdout=log, stderr=log)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(20)


def serving(qs: Quickstart) -> bool:
    return any(s["state"].startswith("UP") for s in describe(qs.lb_dir)["servers"])


def test_stopping_one_whole_cluster_fails_no_request(clusters, external):
    first, second = clusters
    for qs in clusters:
        qs.start()
    wait_for(lambda: serving(first) and serving(second), 30, what="both clusters serving")
    wait_for(lambda: requests.get(external + "/zato/ping", timeout=5).ok, 30, what="external LB serving")
    with Load(external + "/zato/ping") as load:
        load.wait_requests(100)
        first.stop()  # its server withdraws and drains, then its LB stops
        assert not os.path.exists(os.path.join(first.lb_dir, "pidfile"))
        load.wait_requests(200)
    assert load.failed == []
    assert requests.get(external + "/zato/ping", timeout=5).json()["zato_env"]["result"] == "ZATO_OK"
