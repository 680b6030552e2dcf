"""The load balancer in front of a real quickstart cluster, driven through the `zato` CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
import requests

from tests.integration.test_lb_support import Load
from tests.support import Quickstart, wait_for, zato
from zato.lb.status import describe

# drain_seconds is only the bound: a stopping server goes on as soon as the LB reports it drained.
LB_TIMINGS = {"lb:haproxy": {"check_inter_ms": 300}, "main": {"drain_seconds": 20}}


@pytest.fixture
def qs(tmp_path):
    cluster = Quickstart(tmp_path, servers=2, extra_conf=LB_TIMINGS).create()
    yield cluster
    # Servers first, the LB last, as `zato stop` does: a server stopping after its LB has no one
    # to report it drained and waits all its drain_seconds (20 here).
    zato("stop", cluster.path, check=False)
    cluster.close()


def up_servers(qs: Quickstart) -> set[str]:
    return {s["name"] for s in describe(qs.lb_dir)["servers"] if s["state"].startswith("UP")}


def test_rolling_restart_with_zato_stop_and_start_under_load_fails_no_request(qs):
    qs.start()
    wait_for(lambda: up_servers(qs) == {"server1", "server2"}, 30, what="both servers UP in HAProxy")
    with Load(qs.lb_url + "/zato/ping") as load:
        load.wait_requests(100)
        for name in ("server1", "server2"):
            qs.stop(name)  # withdraws, drains, stops
            with open(qs.settings(name).logfile) as f:
                assert "drained by 1 load balancer(s)" in f.read()
            wait_for(lambda n=name: n not in {s["name"] for s in describe(qs.lb_dir)["servers"]}, 30)
            load.wait_requests(50)
            qs.start(name)
            wait_for(lambda: up_servers(qs) == {"server1", "server2"}, 30, what=f"{name} back in HAProxy")
            load.wait_requests(50)
    assert load.failed == []


def test_zato_info_shows_haproxy_and_its_servers(qs):
    qs.start()
    wait_for(lambda: up_servers(qs) == {"server1", "server2"}, 30, what="both servers UP in HAProxy")
    out = zato("info", qs.lb_dir, "--json").stdout
    for line in open(qs.lb_dir + "/config/lb.conf"):
        if line.startswith("password"):
            assert line.split("=", 1)[1].strip() not in out
    lb = json.loads(out)["details"]
    assert lb["haproxy"]["running"] and lb["haproxy"]["version"][0].isdigit(), lb["haproxy"]
    assert {s["name"] for s in lb["servers"]} == {"server1", "server2"}, lb["servers"]
    text = zato("info", qs.lb_dir).stdout  # for people: one line a server (before: raw JSON)
    haproxy_line = rf"\n  haproxy +pid {lb['haproxy']['pid']}, running yes, version "  # values in one column
    assert re.search(haproxy_line, text), text
    assert "  servers\n    name server1, address 127.0.0.1:" in text and "{" not in text, text


def test_controller_crash_then_zato_start_adopts_haproxy_under_load(qs):
    qs.start()
    wait_for(lambda: up_servers(qs) == {"server1", "server2"}, 30, what="both servers UP in HAProxy")
    haproxy_pid = describe(qs.lb_dir)["haproxy"]["pid"]
    with Load(qs.lb_url + "/zato/ping") as load:
        load.wait_requests(100)
        qs.kill("load-balancer", signal.SIGKILL)  # the controller only; HAProxy keeps serving
        load.wait_requests(100)
        out = zato("start", qs.lb_dir).stdout
        assert "load balancer started" in out
        # `zato start` returns once the new controller has HAProxy, not when the orphaned
        # HAProxy merely answers
        with open(os.path.join(qs.lb_dir, "logs", "lb.log")) as f:
            assert "adopted the running HAProxy" in f.read()
        load.wait_requests(100)
    assert load.failed == []
    info = describe(qs.lb_dir)
    assert info["controller"]["running"]
    assert info["haproxy"]["pid"] == haproxy_pid


SLOW = """
import gevent
from zato.server.service import Service


class Report(Service):
    name = "slow.report"

    def handle(self):
        self.logger.info("slow report %s starts", self.cid)
        gevent.sleep(2.5)
"""


def test_a_get_slower_than_timeout_server_runs_once_and_gets_zatos_504(quickstart):
    """Before, HAProxy replayed it on each retry (response-timeout): it ran four times over both
    servers, and its client waited four timeouts for HAProxy's HTML 504."""
    qs = quickstart(servers=2, extra_conf={"lb:haproxy": {"timeout_server_ms": 1000}})
    qs.start()
    qs.deploy("slow", SLOW)
    qs.open_channels("slow", ("report",))
    r = requests.get(f"{qs.lb_url}/slow/report", timeout=30)
    assert r.status_code == 504
    assert r.json()["zato_env"]["details"] == "The server did not answer within 1 s; the request may have run"
    assert r.headers["X-Zato-CID"] == r.json()["zato_env"]["cid"]
    time.sleep(3.5)  # the replays, had there been any, would have started by now (one a second)
    assert len(re.findall(r"slow report \S+ starts", qs.server_logs())) == 1


UPSTREAM = """
from zato.server.service import Service


class Upstream(Service):
    name = "answers.upstream"

    def handle(self):
        self.logger.info("upstream call %s ran", self.cid)
        self.response.status_code = int(self.request.http.GET.get("status", "200"))
        self.response.payload = {"upstream": "down"}
"""


def test_a_get_whose_service_answers_502_503_or_504_runs_once(quickstart):
    """A service's own 502, 503 or 504 (its upstream is down, or Redis is away under it) is its
    answer, as a 500 is: before, HAProxy replayed the GET on each retry (retry-on 502 503
    504), so the service ran four times over both servers (each time calling its upstream
    again) and the client saw one answer."""
    qs = quickstart(servers=2)
    qs.start()
    qs.deploy("answers", UPSTREAM)
    qs.open_channels("answers", ("upstream",))
    for status in (502, 503, 504, 500, 200):
        r = requests.get(f"{qs.lb_url}/answers/upstream?status={status}", timeout=30)
        assert (r.status_code, r.json()) == (status, {"upstream": "down"})
        ran = f"upstream call {r.headers['X-Zato-CID']} ran"  # a replay keeps the request's CID
        wait_for(lambda ran=ran: ran in qs.server_logs(), 10, what="the run in the log")
        time.sleep(1)  # the replays, had there been any, come within ms
        assert qs.server_logs().count(ran) == 1, (status, qs.server_logs().count(ran))


LONG = """
import gevent
from zato.server.service import Service


class Work(Service):
    name = "long.work"

    def handle(self):
        self.logger.info("long work %s starts", self.cid)
        gevent.sleep(float(self.request.http.GET.get("s", "8")))
        self.response.payload = {"server": self.server.name}
"""


def test_a_graceful_stop_lets_requests_longer_than_the_hung_limit_finish(qs):
    """A stopping server answers its health checks 503 while it drains: before, the LB took
    that for a hung server after 5 s (HUNG_AFTER) and shut its sessions, so a POST in flight
    got a 504 ('lost before it answered') though it ran to its end, and a GET was run once
    more on the other server. Now a server that answers its checks is never taken for hung."""
    from concurrent.futures import ThreadPoolExecutor

    qs.start()
    wait_for(lambda: up_servers(qs) == {"server1", "server2"}, 30, what="both servers UP in HAProxy")
    qs.deploy("long", LONG)
    qs.open_channels("long", ("work",))
    for name in ("server1", "server2"):  # one quick call each, once both have the channel
        probe = f"{qs.server_url(name)}/long/work?s=0"
        wait_for(
            lambda u=probe: requests.get(u, timeout=10).status_code == 200, 30, what=f"the channel on {name}"
        )
    url = f"{qs.lb_url}/long/work?s=8"
    calls = [("GET", n) for n in range(3)] + [("POST", n) for n in range(3)]
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(requests.request, method, url, json={}, timeout=60) for method, _ in calls]
        wait_for(
            lambda: len(re.findall(r"long work \S+ starts", qs.server_logs())) >= 2 + len(calls),
            15,
            what="every call running",
        )
        qs.stop("server1")  # withdraws, drains, stops once its requests are done
        answers = [f.result() for f in futures]
    assert [r.status_code for r in answers] == [200] * len(calls), [r.text for r in answers]
    assert {r.json()["server"] for r in answers} == {"server1", "server2"}, qs.server_logs()[-6000:]
    cids = re.findall(r"long work (\S+) starts", qs.server_logs())
    assert len(cids) == 2 + len(calls), cids  # none ran twice (2: the probes)
    with open(os.path.join(qs.lb_dir, "logs", "lb.log")) as f:
        assert "shutting them" not in f.read()
