"""A quickstart cluster answers /zato/ping exactly as Zato does, on every server."""

from __future__ import annotations

import json
import os

import pytest
import requests

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


def test_stop_removes_process_and_pidfile(cluster):
    pid = cluster.pid("server2")
    out = cluster.stop("server2")[0]
    assert f"server server2 stopped (pid {pid})" in out
    assert not os.path.exists(os.path.join(cluster.server_dir("server2"), "pidfile"))
    assert not pid_alive(pid)
