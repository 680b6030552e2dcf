"""The ODB (PostgreSQL) taking connections and never answering: a hung PostgreSQL or pgbouncer,
made here by a forwarder of the test's own (tests/hosts/forward.py) stopped with SIGSTOP. Its
kernel still acknowledges what is sent and answers the keepalives, so neither libpq's keepalives
nor its tcp_user_timeout ever end a wait. Every wait on it is bounded (zato.odb.engine's
ANSWER_WAIT): the admin API answers 503 saying the ODB did not answer within that, the CLI exits
1 with one line, nothing is half-made in Redis, and channels go on serving. Before, each of these
waited for as long as the ODB did not answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

from tests.integration.test_definitions_odb_lost_commit import listed as out_names
from tests.lost_commit_proxy import LostCommitProxy
from tests.support import PG_URL, free_port, one_line_error, wait_for, zato

SILENT = "the ODB did not answer within"  # zato.odb.engine.ANSWER_WAIT seconds
LONG = 90  # what a client waits here: well past the bound and the connection timeouts after it


class Forwarder:
    """tests/hosts/forward.py to PostgreSQL in a process of its own, which stop() (SIGSTOP)
    hangs: connections are still taken and acknowledged, and nothing is answered."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hosts.forward", f"127.0.0.1:{self.port}=127.0.0.1:5432"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def url(self) -> str:
        return PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    def hang(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def answer(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        self.answer()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def forwarder():
    f = Forwarder()
    yield f
    f.close()


SOURCE = """
from zato.server.service import Service


class Hello(Service):
    name = "hung.hello"

    def handle(self):
        self.response.payload = {"hello": self.request.http.GET.get("who", "")}
"""


OUTGOING = {"name": "o", "def": "d"}  # an outgoing AMQP connection: its create has a Redis part


def test_admin_api_and_cli_answer_within_a_bound_while_the_odb_hangs(quickstart, forwarder):
    qs = quickstart(servers=1, workers=1, odb=forwarder.url())
    qs.start()
    qs.deploy("hung_hello", SOURCE)
    zato("channel", "create", qs.path, "--name", "hello", "--url-path", "/hello", "--service", "hung.hello")
    zato("conn", "create", "amqp-def", qs.path, "--name", "d", "--port", "1", "--password", "x")
    hello = f"{qs.lb_url}/hello?who=me"
    wait_for(lambda: requests.get(hello, timeout=10).ok, what=hello)
    admin = f"{qs.server_url('server1')}/zato/admin"

    forwarder.hang()
    answers: dict[str, requests.Response] = {}

    def call(key: str, method: str, path: str, body: dict | None = None) -> None:
        answers[key] = requests.request(method, admin + path, json=body, auth=qs.admin_auth, timeout=LONG)

    calls = [
        threading.Thread(target=call, args=("list", "GET", "/conn")),
        threading.Thread(target=call, args=("create", "POST", "/conn/amqp-outgoing", OUTGOING)),
        threading.Thread(target=call, args=("channels", "GET", "/channels")),
    ]
    for t in calls:
        t.start()
    # the channel's service reads nothing from the ODB: it goes on answering meanwhile
    for _ in range(5):
        r = requests.get(hello, timeout=10)
        assert r.status_code == 200 and r.json() == {"hello": "me"}, r.text
    cli = zato("conn", "create", "http-outgoing", qs.path, "--name", "crm", "--address", "http://127.0.0.1:9",
               check=False, timeout=LONG)  # fmt: skip
    for t in calls:
        t.join()
    one_line_error(cli, SILENT)
    for key, r in answers.items():  # before: each waited as long as the ODB did (a read timeout here)
        assert r.status_code == 503, (key, r.text)
        assert SILENT in r.json()["zato_env"]["details"], (key, r.text)
    assert "nothing was changed" in answers["create"].json()["zato_env"]["details"]
    assert out_names(qs.cluster) == set()  # nothing half-made in Redis

    forwarder.answer()  # the ODB answers again: the same changes go through
    r = requests.post(admin + "/conn/amqp-outgoing", json=OUTGOING, auth=qs.admin_auth, timeout=LONG)
    assert r.status_code == 201, r.text
    assert out_names(qs.cluster) == {"amqp:o"}


class HangingCommitProxy(LostCommitProxy):
    """Hands the armed COMMIT to PostgreSQL (which commits it) and then forwards nothing more on
    that connection: its answer never comes, the connection stays open."""

    released = threading.Event()

    def _lose(self, client, upstream) -> None:  # noqa: ANN001
        self.cut.set()
        self.released.wait()  # both sockets stay open, nothing forwarded, until the test ends

    def stop(self) -> None:
        self.released.set()
        super().stop()


def test_a_change_whose_commit_is_never_answered_is_read_back(quickstart):
    proxy = HangingCommitProxy(free_port())
    proxy.start()
    try:
        url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        qs = quickstart(servers=1, workers=1, odb=url, lb=False)
        qs.start()
        admin = f"{qs.server_url('server1')}/zato/admin"
        zato("conn", "create", "amqp-def", qs.path, "--name", "d", "--port", "1", "--password", "x")
        proxy.arm(b"INSERT INTO zato_amqp_outgoing")
        r = requests.post(admin + "/conn/amqp-outgoing", json=OUTGOING, auth=qs.admin_auth, timeout=LONG)
        assert proxy.cut.is_set()
        # before: no answer at all (a read timeout here), the ODB having made it
        assert r.status_code == 201, r.text
        assert any(SILENT in w and "the ODB had made" in w for w in r.json()["warnings"]), r.text
        assert out_names(qs.cluster) == {"amqp:o"}  # completed: its Redis part made
    finally:
        proxy.stop()


def test_a_link_broken_under_a_connection_is_said_as_such_when_its_block_ends():
    """A PostgreSQL ODB's link breaks under `with engine.connect()` (as the lease keeper's floor
    and the start's checks use it): the block ends with the error that broke it. Before, the
    bound on answers read the invalidated connection as its rollback was said, and
    PendingRollbackError ('Can't reconnect until invalid transaction is rolled back') took the
    place of the real error (seen as a thread's exception in tests/hosts/test_partition)."""
    from sqlalchemy import exc, text

    from tests.conn_support import TCPProxy
    from zato.odb.engine import make_engine

    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    engine = make_engine(PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    try:
        with pytest.raises(exc.OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()
            proxy.stop()  # the link, and every connection over it, gone
            conn.execute(text("SELECT 2")).scalar()
    finally:
        proxy.stop()
        engine.dispose(close=False)
