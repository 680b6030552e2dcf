"""A quickstart cluster answers /zato/ping exactly as Zato does, on every server."""

from __future__ import annotations

import json
import os
import signal

import pytest
import requests

from tests.support import wait_for
from zato.common.cid import is_cid
from zato.common.pidfile import pid_alive


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=2, lb=False)
    qs.start()
    return qs


def test_ping_every_server(cluster):
    for name in cluster.server_names:
        r = requests.get(cluster.server_url(name) + "/zato/ping", timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        cid = r.headers["X-Zato-CID"]
        assert is_cid(cid)
        assert r.text == (
            '{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "' + cid + '"}, '
            '"zato_ping_response": {"pong": "zato"}}'
        )
        assert json.loads(r.text)["zato_env"]["cid"] == cid


def supervisor_pid(arbiter: int) -> int | None:
    """The pid of the arbiter's connector-supervisor child (found by parent pid)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if (
            ppid == arbiter
            and (b"zato-supervisor" in cmdline or b"zato.connector.supervisor" in cmdline)
            and pid_alive(int(entry))
        ):
            return int(entry)
    return None


def test_a_killed_supervisor_is_started_again(cluster):
    arbiter = cluster.pid("server1")
    first = wait_for(lambda: supervisor_pid(arbiter), timeout=20, what="the supervisor")
    os.kill(first, signal.SIGKILL)
    second = wait_for(
        lambda: (supervisor_pid(arbiter) or first) != first and supervisor_pid(arbiter), timeout=20
    )
    assert second != first
    log = open(os.path.join(cluster.server_dir("server1"), "logs", "server.log")).read()
    assert f"connector supervisor (pid {first}) exited" in log and "connector supervisor restarted" in log


def test_stop_removes_process_and_pidfile(cluster):
    pid = cluster.pid("server2")
    out = cluster.stop("server2")[0]
    assert f"server server2 stopped (pid {pid})" in out
    assert not os.path.exists(os.path.join(cluster.server_dir("server2"), "pidfile"))
    assert not pid_alive(pid)
