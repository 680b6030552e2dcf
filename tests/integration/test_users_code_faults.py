"""Users' code that would end a worker, or its whole server, does not. sys.exit() in a service,
directly or through invoke_async, is that service's 500 (logged with its traceback) and the same
worker goes on serving; so is a service that invokes itself, or a loop of services. os._exit(3)
in a service ends only its worker (gunicorn would halt the server on that code). An async call
under which workers keep dying is parked after three, and so is an AMQP channel's message at its
max_deliveries. A module that calls sys.exit() while
loading is refused at deploy with the reason. A real one-server quickstart with one worker, so
a restarted worker shows as a new pid."""

from __future__ import annotations

import uuid

import pytest
import redis
import requests

from tests.conn_support import Rabbit
from tests.support import REDIS_URL, wait_for, zato
from zato.coord.async_invoke import push
from zato.coord.signing import call_key

SERVICES = """
import os
import sys
from zato.server.service import Service


class Pid(Service):
    name = "faults.pid"

    def handle(self):
        self.response.payload = {"pid": os.getpid()}


class Exits(Service):
    name = "faults.exits"

    def handle(self):
        sys.exit(3)


class Later(Service):
    name = "faults.later"

    def handle(self):
        self.response.payload = {"cid": self.invoke_async("faults.exits")}


class Crash(Service):
    name = "faults.crash"

    def handle(self):
        os._exit(9)  # what no handler can stop: its worker is gone


class Me(Service):
    name = "faults.me"

    def handle(self):
        self.response.payload = self.invoke("faults.me")


class Ping(Service):
    name = "faults.ping"

    def handle(self):
        self.response.payload = self.invoke("faults.pong")


class Pong(Service):
    name = "faults.pong"

    def handle(self):
        self.response.payload = self.invoke("faults.ping")


class Missing(Service):
    name = "faults.missing"

    def handle(self):
        if self.request.payload == "async":
            self.invoke_async("faults.not-deployed")
        self.response.payload = self.invoke("faults.not-deployed")


class ExitsThree(Service):
    name = "faults.exits-three"

    def handle(self):
        os._exit(3)  # gunicorn's code for a worker that failed to boot: it would halt the server
"""


@pytest.fixture(scope="module")
def server(module_quickstart):
    qs = module_quickstart(servers=1, lb=False)
    qs.start()
    qs.deploy("faults", SERVICES)
    qs.open_channels("faults", ("pid", "exits", "later", "exits-three", "me", "ping", "missing"))
    return qs


def worker_pid(qs) -> int:  # noqa: ANN001
    return requests.get(f"{qs.server_url('server1')}/faults/pid", timeout=5).json()["pid"]


def test_sys_exit_in_a_service_is_its_500_and_the_worker_goes_on(server):
    pid = worker_pid(server)
    r = requests.get(f"{server.server_url('server1')}/faults/exits", timeout=5)
    assert r.status_code == 500
    assert r.json()["zato_env"]["result"] == "ZATO_ERROR"
    assert "service faults.exits called sys.exit(3); the worker goes on" in server.server_logs()
    assert worker_pid(server) == pid


def test_a_service_invoking_itself_or_a_loop_of_services_is_stopped_with_their_names(server):
    """Zato refuses a service that invokes itself; a loop of two is stopped once the chain is
    50 deep. Before, both ran until Python's RecursionError, logged with a traceback of some
    300 KB for the two requests (25 KB now)."""
    pid = worker_pid(server)
    before = len(server.server_logs())
    for path in ("me", "ping"):
        r = requests.get(f"{server.server_url('server1')}/faults/{path}", timeout=30)
        assert r.status_code == 500 and r.json()["zato_env"]["result"] == "ZATO_ERROR"
    logs = server.server_logs()
    assert "service 'faults.me' cannot invoke itself" in logs
    said = "invocation chain deeper than 50 services (a loop?): faults.ping -> faults.pong -> faults.ping"
    assert said in logs
    assert "RecursionError" not in logs[before:]
    assert len(logs) - before < 100_000
    assert worker_pid(server) == pid


def test_a_service_invoking_one_not_deployed_is_its_500_not_a_404_of_its_own(server):
    """Before: 404 `no such service: faults.missing`, the service that was called and runs,
    as if it were the one not deployed."""
    for body in ("sync", "async"):
        r = requests.post(f"{server.server_url('server1')}/faults/missing", json=body, timeout=5)
        assert r.status_code == 500, r.text
        cid = r.json()["zato_env"]["cid"]
        assert (
            r.json()["zato_env"]["details"]
            == f"service faults.missing failed; see the server log for cid {cid}"
        )
        assert f"cid {cid}: service faults.missing failed" in server.server_logs()
    assert "ServiceNotFound: no such service: faults.not-deployed" in server.server_logs()


def test_sys_exit_in_an_async_service_is_logged_once_and_kills_nothing(server):
    pid = worker_pid(server)
    r = requests.get(f"{server.server_url('server1')}/faults/later", timeout=5)
    assert r.status_code == 200, r.text
    cid = r.json()["cid"]
    said = f"cid {cid}: async service faults.exits failed"
    wait_for(lambda: said in server.server_logs(), timeout=15, what=said)
    assert worker_pid(server) == pid
    assert server.server_logs().count(said) == 1


def test_a_module_that_exits_while_loading_is_refused_with_the_reason(server, tmp_path):
    path = tmp_path / "exits_on_import.py"
    path.write_text("import sys\nsys.exit(0)\n")
    proc = zato("deploy", server.path, str(path), check=False)
    assert proc.returncode != 0
    assert "module exits_on_import: fails on import: SystemExit: 0" in proc.stderr + proc.stdout
    assert requests.get(f"{server.server_url('server1')}/faults/pid", timeout=5).status_code == 200


def test_an_async_call_that_ends_its_worker_is_parked_after_three_and_the_server_serves_on(server):
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = call_key(server.cluster_secret, server.cluster)
    push(client, server.cluster, "faults.crash", None, "KCRASH", key=key)  # as a service's invoke_async does
    said = "invoke_async: call KCRASH of service faults.crash parked"
    wait_for(lambda: said in server.server_logs(), timeout=90, interval=0.5, what=said)
    assert "workers died while running it" in server.server_logs()
    status = zato("cluster", "status", server.path, check=False).stdout
    assert "invoke_async: 0 queued, 1 parked" in status
    assert requests.get(f"{server.server_url('server1')}/faults/pid", timeout=5).status_code == 200


def test_os_exit_3_in_a_service_restarts_its_worker_and_does_not_halt_the_server(server):
    arbiter, pid = server.pid("server1"), worker_pid(server)
    with pytest.raises(requests.ConnectionError):  # its worker is gone under the request
        requests.get(f"{server.server_url('server1')}/faults/exits-three", timeout=5)
    wait_for(lambda: worker_pid(server) != pid, timeout=30, what="a new worker answers")
    assert server.pid("server1") == arbiter
    assert f"worker {pid}: os._exit(3) called while serving" in server.server_logs()
    assert "Worker failed to boot" not in server.server_logs()


def test_an_amqp_message_that_ends_its_worker_is_parked_at_its_max_deliveries(server):
    """The channel's service ends its worker (os._exit) under every delivery of one message.
    Before: the connection closed without an answer was "server cannot be reached", so the
    message went back uncounted and ran again, ending a worker each time, for ever. Now each
    such call is a failed delivery (its worker took it and may have run it): parked at 2."""
    rabbit = Rabbit()
    queue = rabbit.queue(f"zt-crash-{uuid.uuid4().hex[:8]}")
    parked = queue + ".zato-parked"
    zato("conn", "create", "amqp-def", server.path, "--name", "rabbit-faults", "--password", "guest")
    zato("conn", "create", "amqp-channel", server.path, "--name", "crash", "--def", "rabbit-faults",
         "--queue", queue, "--service", "faults.crash", "--max-deliveries", "2")  # fmt: skip
    try:
        rabbit.publish(queue, b'{"n": 1}', message_id="crash-1")
        wait_for(lambda: rabbit.count(parked) == 1, timeout=60, interval=0.5, what="the message parked")
        ((props, body),) = rabbit.get_all(parked)
        assert body == b'{"n": 1}'
        assert props.headers["x-zato-deliveries"] == 2
        assert "closed the connection without an answer" in props.headers["x-zato-parked-reason"]
        assert rabbit.count(queue) == 0
        assert requests.get(f"{server.server_url('server1')}/faults/pid", timeout=5).status_code == 200
    finally:
        zato("conn", "delete", "amqp-channel", server.path, "--name", "crash", check=False)
        zato("conn", "delete", "amqp-def", server.path, "--name", "rabbit-faults", check=False)
        rabbit.close()
