"""The load balancer with a real HAProxy and real gunicorn + gevent servers on free ports."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import stat
import subprocess
import sys
from typing import NamedTuple

import pytest
import requests

from tests.integration.test_lb_support import (  # noqa: F401 - lb is a fixture
    PASSWORD,
    Load,
    add_server,
    backend_pids,
    lb_fixture,
    servers_on_disk,
    set_conf,
    write_lb_dir,
)
from tests.support import cluster_name, free_port, wait_for
from zato.common.cid import is_cid
from zato.lb.status import describe


def test_alive_and_zato_error_envelope_with_no_server(lb):
    lb.start()
    alive = requests.get(lb.url + "/zato-lb-alive", timeout=5)
    assert alive.status_code == 200
    assert "HAProxy: service ready." in alive.text

    resp = requests.get(lb.url + "/zato/ping", timeout=5)
    assert resp.status_code == 503
    body = resp.json()
    assert body["zato_env"]["result"] == "ZATO_ERROR"
    assert body["zato_env"]["details"] == "No server available"
    assert is_cid(body["zato_env"]["cid"])
    assert resp.headers["X-Zato-CID"] == body["zato_env"]["cid"]


def test_servers_join_and_leave_gracefully_with_no_failed_request(lb):
    lb.start()
    add_server(lb, "server1")
    wait_for(lambda: None not in backend_pids(lb), 20, what="server1 gets traffic")
    second = add_server(lb, "server2")
    with Load(lb.url + "/zato/ping") as load:
        wait_for(lambda: len(load.pids) == 2, 20, what="traffic spread over both servers")
        second.stop_gracefully(drain=1.0)
        load.wait_requests(200)
    assert load.failed == []
    wait_for(
        lambda: [s["name"] for s in describe(lb.lb_dir)["servers"]] == ["server1"], 20, what="server2 removed"
    )
    wait_for(lambda: servers_on_disk(lb) == {"server1"}, 20, what="haproxy.cfg in step")


def test_stats_socket_private_and_stats_page_needs_credentials(lb):
    lb.start()
    add_server(lb, "server1")
    sock = os.path.join(lb.lb_dir, "work", "haproxy.sock")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(lb.lb_dir, "config", "haproxy.cfg")).st_mode) == 0o600

    assert requests.get(lb.url + "/zato-lb-stats", timeout=5).status_code == 401
    assert requests.get(lb.url + "/zato-lb-stats", auth=("admin", "wrong"), timeout=5).status_code == 401
    assert requests.get(lb.url + "/zato-lb-stats", auth=("admin", PASSWORD), timeout=5).status_code == 200

    # A joining server is added in MAINT and set ready a moment later: wait until it is UP.
    info = wait_for(
        lambda: (d := describe(lb.lb_dir))["servers"] and d["servers"][0]["state"].startswith("UP") and d,
        20,
        what="server1 UP in status",
    )
    assert info["controller"]["running"] and info["haproxy"]["running"]
    assert info["haproxy"]["version"].startswith("2.")
    assert info["servers"][0]["name"] == "server1"
    assert info["servers"][0]["state"].startswith("UP")
    assert PASSWORD not in json.dumps(info)
    with open(os.path.join(lb.lb_dir, "logs", "lb.log")) as f:
        assert PASSWORD not in f.read()


class Answer(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    text: str


def stats_page(lb, source: str, password: str | None, path: str = "/zato-lb-stats") -> Answer:  # noqa: ANN001
    """GET a stats page from the client address `source` (any 127.0.0.0/8 address reaches the LB),
    with the stats user and `password` (None: no credentials)."""
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10, source_address=(source, 0))
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read().decode(errors="replace"))
    finally:
        conn.close()


def test_an_address_guessing_the_stats_password_is_throttled_and_no_other(lb):
    """Before: nothing limited guessing the stats password (15 wrong ones, 15 answers 401, as
    fast as the client liked). Now [stats] max_failures (10) wrong logins a minute from one
    address, then 429 with Retry-After on both pages the stats credentials open, even with the
    right password, while another address logs in."""
    lb.start()
    codes = [stats_page(lb, "127.0.0.1", f"guess-{i}").status for i in range(15)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
    refused = stats_page(lb, "127.0.0.1", PASSWORD)
    assert refused.status == 429 and "too many failed logins" in refused.text
    assert 60 < int(refused.headers["Retry-After"]) <= 121  # the rate is a 60 s sliding window
    assert stats_page(lb, "127.0.0.1", PASSWORD, "/zato-lb-metrics").status == 429
    assert stats_page(lb, "127.0.0.2", PASSWORD).status == 200
    assert stats_page(lb, "127.0.0.2", PASSWORD, "/zato-lb-metrics").status == 200
    # a request without credentials (what a browser sends before it asks for them) is no failed login
    assert {stats_page(lb, "127.0.0.3", None).status for _ in range(12)} == {401}
    assert stats_page(lb, "127.0.0.3", PASSWORD).status == 200
    assert requests.get(lb.url + "/zato-lb-alive", timeout=5).ok


@pytest.mark.parametrize(
    "section,key,value,expected",
    [
        ("main", "port", "eleven", "[main] port: 'eleven' is not a whole number"),
        ("haproxy", "retries", "-1", "[haproxy] retries: -1 is not in 0..100"),
        ("haproxy", "binary", "no-such-haproxy", "[haproxy] binary: 'no-such-haproxy' not found"),
        ("stats", "username", "ad:min", "[stats] username"),
        ("stats", "password", "1234", "[stats] password: is shorter than 8 characters"),
    ],
)
def test_bad_config_value_is_one_clear_line_before_haproxy_starts(tmp_path, section, key, value, expected):
    lb_dir = write_lb_dir(str(tmp_path / "lb"), cluster_name("lb"), free_port())
    set_conf(os.path.join(lb_dir, "config", "lb.conf"), section, key, value)
    proc = subprocess.run(
        [sys.executable, "-m", "zato.lb.main", lb_dir], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(lb_dir, "config", "haproxy.cfg"))
    assert not os.path.exists(os.path.join(lb_dir, "pidfile"))


def test_sighup_applies_new_lb_conf_by_reload_and_keeps_serving(lb):
    lb.start()
    add_server(lb, "server1")
    wait_for(lambda: None not in backend_pids(lb), 20, what="server1 gets traffic")
    master = lb.haproxy_pid()
    conf = os.path.join(lb.lb_dir, "config", "lb.conf")
    stats = lb.url + "/zato-lb-stats"
    with Load(lb.url + "/zato/ping") as load:
        load.wait_requests(50)
        set_conf(conf, "stats", "password", "a-new-one")
        os.kill(lb.proc.pid, signal.SIGHUP)
        wait_for(
            lambda: requests.get(stats, auth=("admin", "a-new-one"), timeout=5).ok, 20, what="new password"
        )
        assert requests.get(stats, auth=("admin", PASSWORD), timeout=5).status_code == 401

        set_conf(conf, "haproxy", "retries", "many")
        os.kill(lb.proc.pid, signal.SIGHUP)
        log = os.path.join(lb.lb_dir, "logs", "lb.log")
        wait_for(lambda: "'many' is not a whole number" in open(log).read(), 20, what="the error in lb.log")
        load.wait_requests(50)
    assert load.failed == []
    assert lb.haproxy_pid() == master  # reloaded, never restarted
    assert requests.get(stats, auth=("admin", "a-new-one"), timeout=5).ok
