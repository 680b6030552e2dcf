"""A GET whose service ends its worker (here: the worker kills itself with SIGKILL, as the
kernel's out-of-memory killer would) is replayed by the load balancer on the next server, as
every GET cut by a dead worker is; but not without end. Before zato.server.fatal, the one GET
ran four times (HAProxy's retries 3) over a two-server cluster, ended four workers, and its
client got "lost before it answered; the request may have run". Now a server refuses a replay
of a request that was alone in one of its workers when that worker ended. Here the GET first
ends the worker of the server that holds nothing else, then the other server's worker, which
also holds a slow request (two in flight: not told apart, both replayed), then comes back to
the first server and is refused: it ran twice, its client gets a 500 that says why, both logs
name it, and the slow request is answered. A real quickstart: two servers, one worker each, and
the load balancer."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.support import wait_for

SERVICES = """
import os
import signal

import gevent

from zato.server.service import Service

RUNS = {runs!r}


class Ends(Service):
    name = "fatal.ends"

    def handle(self):
        with open(RUNS, "a") as f:
            f.write("%d\\n" % os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


class Slow(Service):
    name = "fatal.slow"

    def handle(self):
        gevent.sleep(1.5)
        self.response.payload = {{"pid": os.getpid()}}
"""


@pytest.fixture(scope="module")
def cluster(module_quickstart, tmp_path_factory):
    runs = str(tmp_path_factory.mktemp("fatal") / "runs.txt")
    qs = module_quickstart(servers=2, workers=1)
    qs.start()
    qs.deploy("fatal", SERVICES.format(runs=runs))
    qs.open_channels("fatal", ("ends", "slow"))
    for name in ("ends", "slow"):  # each server's one worker has both channels
        said = f"HTTP channel fatal-{name} reloaded"
        wait_for(lambda said=said: qs.server_logs().count(said) >= 2, timeout=30, what=said)
    return qs, runs


def test_a_get_that_ends_its_worker_runs_once_on_each_server_and_its_client_is_told_why(cluster):
    qs, runs = cluster
    held: list[requests.Response] = []  # a request in flight in a worker that ends under it
    slow = threading.Thread(target=lambda: held.append(requests.get(f"{qs.lb_url}/fatal/slow", timeout=30)))
    slow.start()
    time.sleep(0.5)  # it sleeps 1.5 s in one of the two workers

    answer = requests.get(f"{qs.lb_url}/fatal/ends", timeout=30)

    slow.join(30)
    assert answer.status_code == 500, answer.text
    detail = answer.json()["zato_env"]["details"]
    assert "this request was running, alone, when a worker of server" in detail
    assert "it is not run again" in detail
    with open(runs) as f:
        pids = f.read().split()
    assert len(pids) == 2, pids  # once on each server (four times before)
    assert len(set(pids)) == 2
    cid = answer.headers["X-Zato-CID"]
    logs = qs.server_logs()
    alone = [p for p in pids if f"worker {p} ended while running cid {cid}, GET /fatal/ends" in logs]
    held_too = f"ended with 2 requests in flight (the last to begin: cid {cid}, GET /fatal/ends)"
    assert len(alone) == 1 and held_too in logs
    assert f"cid {cid}: not run: it was running, alone, when a worker of this server ended" in logs
    # the request the other worker held when the GET ended it was replayed and answered
    assert [r.status_code for r in held] == [200]


HOG = """
import time

from zato.server.service import Service


class Hog(Service):
    name = "fatal.hog"

    def handle(self):
        started = time.monotonic()
        while time.monotonic() - started < 20:  # never yields to gevent's loop
            pass
"""


def test_a_service_holding_its_worker_past_the_timeout_is_said_as_that(quickstart):
    qs = quickstart(servers=1, lb=False, extra_conf={"gunicorn": {"timeout": "3"}})
    qs.start()
    qs.deploy("hog", HOG)
    qs.open_channels("fatal", ("hog",))
    wait_for(lambda: "HTTP channel fatal-hog reloaded" in qs.server_logs(), timeout=30, what="the channel")

    answer = requests.get(f"{qs.server_url('server1')}/fatal/hog", timeout=30)

    assert answer.status_code == 500
    assert "service fatal.hog failed" in answer.json()["zato_env"]["details"]
    logs = qs.server_logs()
    said = "service fatal.hog held its worker past the worker timeout ([gunicorn] timeout, 3 s)"
    assert said + " and was stopped; the worker restarts" in logs
    assert "called sys.exit" not in logs  # gunicorn's SystemExit, not the service's own
