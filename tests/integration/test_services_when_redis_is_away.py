"""A service that uses the cluster's Redis (self.cache, self.lock, invoke_async, self.kvdb.conn)
while Redis cannot be reached: the caller gets a 503 saying so, a transient answer it may
retry, and server.log says why. Before: a 500 "service failed". A real server whose Redis is
a redis-server of the test's own, shut down mid-test."""

from __future__ import annotations

import base64
import time

import requests

from tests.support import private_redis, wait_for

SOURCE = """
from zato.server.service import Service

class Cached(Service):
    name = 'away.cached'

    def handle(self):
        self.cache.default.set('k', 1)
        self.response.payload = {'k': self.cache.default.get('k')}

class Locked(Service):
    name = 'away.locked'

    def handle(self):
        with self.lock():
            self.response.payload = {'locked': True}

class Queued(Service):
    name = 'away.queued'

    def handle(self):
        self.response.payload = {'cid': self.invoke_async('away.cached', {})}

class Raw(Service):
    name = 'away.raw'

    def handle(self):
        self.response.payload = {'pong': self.kvdb.conn.ping()}

class Plain(Service):
    name = 'away.plain'

    def handle(self):
        self.response.payload = {'ok': True}
"""

NAMES = ("cached", "locked", "queued", "raw", "plain")


def serving(quickstart, port: int):  # noqa: ANN001, ANN201 - (Quickstart, its server's URL)
    """A one-server cluster on the test's own Redis at `port`, every service answering."""
    qs = quickstart(servers=1, lb=False, extra_conf={"kvdb": {"url": f"redis://127.0.0.1:{port}/0"}})
    qs.start()
    qs.deploy("away", SOURCE)
    qs.open_channels("away", NAMES)
    base = qs.server_url("server1")
    for name in NAMES:
        url = f"{base}/away/{name}"
        wait_for(lambda u=url: requests.get(u, timeout=10).status_code == 200, what=name)
    return qs, base


def test_a_service_using_redis_while_it_is_away_is_a_503_that_says_so(quickstart):
    with private_redis() as (port, admin):
        qs, base = serving(quickstart, port)
        admin.shutdown(nosave=True)
        for name in NAMES[:-1]:
            r = requests.get(f"{base}/away/{name}", timeout=30)
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.json()["zato_env"]["details"] == "the cluster's Redis is not available; try again later"
        assert requests.get(f"{base}/away/plain", timeout=10).json() == {"ok": True}  # the rest serves
        log = qs.server_logs()
        assert "service away.cached: the cluster's Redis is not available" in log
        assert "service away.raw: the cluster's Redis is not available" in log


def test_a_redis_that_refuses_writes_is_an_outage_said_once_not_a_bug_logged_every_second(quickstart):
    """A Redis that answers but refuses every write: a replica (READONLY; here the test's own
    made a replica of a master that does not exist), or one whose snapshots fail (MISCONF: its
    disk is full) or at its maxmemory (OOM). Before: the services using it answered 500, and
    each process logged an ERROR line every second ("Redis refused lease check", "invoke_async:
    ... retrying in 1.0 s") as if it were a bug, for as long as it lasted."""
    with private_redis() as (port, admin):
        qs, base = serving(quickstart, port)
        before = len(qs.server_logs())
        admin.replicaof("127.0.0.1", 1)  # a master that is not there: its replica refuses writes
        for name in ("cached", "locked", "queued"):
            r = requests.get(f"{base}/away/{name}", timeout=30)
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.json()["zato_env"]["details"] == "the cluster's Redis is not available; try again later"
        for name in ("raw", "plain"):  # a read, and a service without Redis
            assert requests.get(f"{base}/away/{name}", timeout=10).status_code == 200
        time.sleep(4)  # the lease and invoke_async's consumer retry every second meanwhile
        log = qs.server_logs()[before:]
        assert "Redis refuses writes (READONLY: it is a replica)" in log
        assert "Redis refused" not in log  # the ERROR of a bug, each second
        assert "zato.async: invoke_async: " not in log, log  # said as the worker's outage, below
        # the supervisor's and the worker's (its invoke_async consumer), once each, saying what it is
        assert log.count("is a read-only replica (") == 2 and "Redis answers again" not in log, log
        assert "Redis unreachable (" not in log, log
        admin.replicaof("NO", "ONE")
        wait_for(
            lambda: requests.get(f"{base}/away/cached", timeout=10).status_code == 200,
            20,
            what="writes again",
        )
        wait_for(lambda: qs.server_logs().count("Redis answers again") == 2, 20, what="the processes' lines")


def test_an_async_invoke_through_the_invoke_endpoint_while_redis_is_away_is_a_503(quickstart):
    """Zato's AnyServiceInvoker with is_async (POST /zato/admin/invoke): the call is queued in
    the cluster's Redis. Before, with that Redis refusing writes or gone, the caller got a 500
    'internal server error' and server.log a traceback per call; now a 503 saying so, as a
    service's own invoke_async gets."""
    with private_redis() as (port, admin):
        qs, base = serving(quickstart, port)
        s = qs.settings("server1")
        auth = (s.invoke_username, s.invoke_password)
        call = {"name": "away.plain", "payload": base64.b64encode(b"{}").decode(), "is_async": True}

        def invoke() -> requests.Response:
            return requests.post(f"{base}/zato/admin/invoke", json=call, auth=auth, timeout=30)

        assert invoke().status_code == 200  # queued
        for outage in ("refuses writes", "gone"):
            if outage == "gone":
                admin.replicaof("NO", "ONE")
                wait_for(lambda: invoke().status_code == 200, 20, what="writes again")
                admin.shutdown(nosave=True)
            else:
                admin.replicaof("127.0.0.1", 1)  # a replica of a master that is not there
            r = invoke()
            assert r.status_code == 503, (outage, r.status_code, r.text)
            assert r.json()["zato_env"]["details"] == "the cluster's Redis is not available; try again later"
        log = qs.server_logs()
        assert "unexpected error serving /zato/admin/invoke" not in log, log
        assert "invoke_async away.plain: the cluster's Redis is not available" in log, log


def test_requests_answered_503_while_redis_is_away_are_a_few_lines_not_one_each(quickstart):
    """Clients keep calling a service that needs Redis while it is away. Before: an ERROR line
    per request (200 requests, 200 lines; under load, a thousand a second). Now each worker says
    5 in full per [logging] client_warning_interval at most, the next saying how many went
    unsaid; every one is still a 503 to its client and in the access log."""
    with private_redis() as (port, admin):
        qs, base = serving(quickstart, port)
        admin.shutdown(nosave=True)
        before = len(qs.server_logs())
        codes = [requests.get(f"{base}/away/cached", timeout=30).status_code for _ in range(200)]
        assert codes == [503] * 200
        said = [
            line
            for line in qs.server_logs()[before:].splitlines()
            if "away.cached: the cluster's Redis" in line
        ]
        assert 1 <= len(said) <= 2 * 5, "\n".join(said)  # 2 workers, 5 each at most a minute
        assert said[0].endswith(
            "answered 503 (said 5 times a minute at most in each worker; 0 more since the last time)"
        )
        access = qs.server_logs("http_access.log")
        assert access.count('"GET /away/cached HTTP/1.1" 503') == 200, access[-2000:]
