"""`make run` of a quickstart created with ports of its own: its closing summary gives the URLs
where the cluster answers, read from its config (`zato info DIR --urls`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.support import cluster_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PORTS = ("17010", "17011", "11223", "8183")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_prints_the_urls_of_the_cluster_it_started(quickstart):
    """Before, the summary named the default ports (17010, 17011, 11223, 8183) whatever the
    quickstart in RUN_DIR was created with."""
    qs = quickstart(servers=2, lb=True, cluster=cluster_name("life"))
    # `-o deps`: bin/setup-deps (packages, the virtualenv, the shared services) is not this test's
    run = subprocess.run(
        ["make", "-C", REPO, "-o", "deps", "run", f"RUN_DIR={qs.path}", f"VENV={sys.prefix}"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": REPO},  # this checkout's zato, whichever the venv installed
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.split(f"Cluster running from {qs.path}:", 1)[1]
    base = qs.base_port
    dashboard_conf = os.path.join(qs.dashboard_dir, "config", "dashboard.conf")
    for line in (
        f"  load balancer  http://127.0.0.1:{qs.lb_port}/zato/ping   (alive: /zato-lb-alive)",
        f"  server1        http://127.0.0.1:{base}/zato/ping   (also /metrics, /zato/ready)",
        f"  server2        http://127.0.0.1:{base + 1}/zato/ping   (also /metrics, /zato/ready)",
        f"  dashboard      http://127.0.0.1:{qs.dashboard_port}/   (user admin, password: [auth] in "
        + f"{dashboard_conf})",
        f"  logs           {qs.path}/*/logs/",
    ):
        assert line in summary.splitlines(), summary
    for port in DEFAULT_PORTS:
        assert f":{port}/" not in summary, summary
    # and they answer
    for url in (f"http://127.0.0.1:{qs.lb_port}/zato/ping", f"http://127.0.0.1:{base + 1}/metrics"):
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - the test's own cluster
            assert r.status == 200


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_stop_before_any_make_run_says_there_is_nothing_to_stop(tmp_path):
    """Before: `make stop` with no cluster made yet failed ('zato: error: .../run/quickstart: no
    such directory', then make's 'Error 1'), as if stopping had gone wrong."""
    run_dir = tmp_path / "none"
    stop = subprocess.run(
        ["make", "-C", REPO, "stop", f"RUN_DIR={run_dir}", f"VENV={sys.prefix}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert stop.returncode == 0, stop.stdout + stop.stderr
    said = f"nothing to stop: no cluster in {run_dir} (make run RUN_DIR={run_dir} creates and starts one)"
    assert said in stop.stdout.splitlines(), stop.stdout
    assert not run_dir.exists()
