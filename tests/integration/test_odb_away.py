"""The ODB (PostgreSQL, reached through a proxy the test cuts) going away while a server serves:
services go on using the outgoing connections their worker read before, as its channels and
services stay in memory; one never read is a 503 until the ODB is back. Secured channels do the
same with their security definitions (tests/integration/test_channel_security.py).

And the ODB's host cut off (a port that takes connections and never answers, as a host behind
a dead link): a worker whose request waits for the ODB goes on serving its other requests.

What a worker keeps, it reads again at once on the config event of a change. A module dropped
into the pickup folder while the ODB is away is deployed once it is back. A worker that
subscribes to config events again while the ODB is away reads the ODB once it is back (what
changed meanwhile came with events it missed)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import threading
import time

import redis
import requests

from tests.conn_support import TCPProxy
from tests.support import (
    PG_URL,
    REDIS_URL,
    cluster_name,
    free_port,
    process_table,
    sqlite_worker,
    wait_for,
    zato,
)
from zato.config.settings import RedisSettings, ServerSettings
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.engine import ODB, create_schema
from zato.odb.models import Cluster
from zato.server.pickup import PickupDir

SOURCE = """
from zato.server.service import Service


class Out(Service):
    name = "odb.out"

    def handle(self):
        conn = self.outgoing.plain_http[self.request.http.GET["conn"]].conn
        r = conn.get(self.cid)
        self.response.payload = {"status": r.status_code, "body": r.json()}
"""


def serving(quickstart, port: int):  # noqa: ANN001, ANN201
    """One server (one worker) whose ODB is PostgreSQL through 127.0.0.1:port, a service calling
    the outgoing connections "known" (used here, so its worker read it) and "later" (never used
    yet); returns (quickstart, server URL, URL of a call through "known")."""
    qs = quickstart(servers=1, workers=1, odb=PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{port}"))
    qs.start()
    qs.deploy("odb_out", SOURCE)
    base = qs.server_url("server1")
    for name in ("known", "later"):
        zato("conn", "create", "http-outgoing", qs.path, "--name", name, "--address", base,
             "--url-path", "/zato/ping")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "out", "--url-path", "/odb/out", "--service", "odb.out")
    url = f"{base}/odb/out?conn=known"
    wait_for(lambda: requests.get(url, timeout=10).ok, what=url)
    return qs, base, url


def test_outgoing_connections_read_before_serve_on_while_the_odb_is_away(quickstart):
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    try:
        qs, base, url = serving(quickstart, proxy.port)
        urls = [url, f"{qs.lb_url}/odb/out?conn=known"]
        wait_for(lambda: requests.get(urls[1], timeout=10).ok, what=urls[1])

        proxy.stop()  # the ODB is away
        time.sleep(2.5)  # past the definition's recheck: the next use tries the ODB
        for _ in range(3):
            for u in urls:
                r = requests.get(u, timeout=10)
                assert r.status_code == 200, r.text  # before: 500, the service failed
                assert r.json()["status"] == 200 and r.json()["body"]["zato_env"]["result"] == "ZATO_OK"
            time.sleep(0.5)
        r = requests.get(f"{base}/odb/out?conn=later", timeout=10)  # never read by this worker
        assert r.status_code == 503, r.text
        assert "the configuration database is not available" in r.json()["zato_env"]["details"]
        assert "cannot read http-outgoing connections from the ODB" in qs.server_logs()
        r = requests.get(f"{base}/zato/admin/channels", auth=qs.admin_auth, timeout=30)
        assert r.status_code == 503, r.text  # what needs the ODB itself; before: 500
        assert r.json()["zato_env"]["details"].startswith("ODB error: ")

        proxy.start()  # back: read again, in the background at first
        wait_for(lambda: requests.get(f"{base}/odb/out?conn=later", timeout=10).ok, 15, what="the ODB back")
        said = "the ODB answers again: http-outgoing connections are read from it again"
        wait_for(lambda: said in qs.server_logs(), 10, what=said)  # logged just after the read is kept
    finally:
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly


def test_a_worker_waiting_for_an_odb_host_that_does_not_answer_serves_its_other_requests(quickstart):
    """Before, the arbiter had imported psycopg, so the workers forked from it had it from
    before their gevent monkey-patching: a read of the ODB held the whole worker, /zato/ping
    included, for PostgreSQL's connect_timeout (10 s), and again at every re-read."""
    port = free_port()
    proxy = TCPProxy(port, ("127.0.0.1", 5432))
    proxy.start()
    hole = None
    try:
        qs, base, url = serving(quickstart, port)
        proxy.stop()
        hole = socket.socket()  # the ODB's port now takes connections and never answers
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", port))
        hole.listen(128)
        time.sleep(2.5)  # past the definition's recheck: its next use has it read again
        assert requests.get(url, timeout=5).status_code == 200  # at once; the read goes on behind
        never_read: list = []
        waiting = threading.Thread(
            target=lambda: never_read.append(requests.get(f"{base}/odb/out?conn=later", timeout=60))
        )
        waiting.start()  # nothing to answer with but what the ODB says: waits up to connect_timeout
        time.sleep(0.5)
        assert requests.get(f"{base}/zato/ping", timeout=5).ok  # before: a read timeout
        assert requests.get(url, timeout=5).status_code == 200
        assert waiting.is_alive()  # both answered while that request still waited for the ODB
        waiting.join()
        assert never_read[0].status_code == 503, never_read[0].text
        for _ in range(3):  # the ODB is tried in the background now, never on a request's path
            assert requests.get(url, timeout=5).status_code == 200
            time.sleep(1)
    finally:
        if hole is not None:
            hole.close()
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly


def test_a_worker_reads_an_outgoing_connection_again_on_its_config_event(tmp_path, cluster):
    """Before, only security definitions were forgotten on their event: an edited outgoing
    connection kept its old definition for up to 2 s on every worker."""
    with sqlite_worker(tmp_path, cluster) as (odb, worker):
        values = {"name": "crm", "address": "http://127.0.0.1:9", "url_path": "/a"}
        connectors.create(odb, cluster, "http-outgoing", values)
        plain_http = worker.store.outgoing.plain_http
        assert plain_http.defs.get("crm")["url_path"] == "/a"
        connectors.edit(odb, cluster, "http-outgoing", "crm", {"url_path": "/b"})
        assert plain_http.defs.get("crm")["url_path"] == "/a"  # read a moment ago: kept
        worker.on_event({"kind": "connector", "type": "http-outgoing", "name": "crm"})
        assert plain_http.defs.get("crm")["url_path"] == "/b"
        assert plain_http["crm"].conn  # the connection made from the new definition


def test_a_pickup_module_waits_for_the_odb_and_is_deployed_once_it_answers(tmp_path):
    """The arbiter's pickup stores a module through a child forked for it (a PostgreSQL ODB).
    Before, a module found while the ODB was away was reported broken and left there until
    someone touched the file."""
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    cluster = cluster_name("pickup")
    odb = ODB(PG_URL)
    try:
        create_schema(odb.engine)
        odb_api.ensure_cluster(odb, cluster)
        settings = ServerSettings(
            path=str(tmp_path), name="s1", cluster=cluster, host="127.0.0.1", port=1, workers=1, odb_url=url,
            redis=RedisSettings(url=REDIS_URL), admin_username="admin", admin_password="pw",
            cluster_secret="s",
        )  # fmt: skip
        os.makedirs(settings.pickup_dir)
        with open(os.path.join(settings.pickup_dir, "later.py"), "w") as f:
            f.write("from zato.service import Service\n\nclass Hi(Service):\n    name = 'odb.hi'\n")
        pickup = PickupDir(dataclasses.replace(settings), interval=0.05)
        proxy.stop()  # the ODB is away

        def ticked_until(done) -> bool:  # noqa: ANN001
            deadline = time.monotonic() + 30
            while not done() and time.monotonic() < deadline:
                pickup.tick()
                time.sleep(0.05)
            return done()

        assert ticked_until(lambda: "later.py" in str(pickup.retry_at))
        assert pickup.reported == {}  # waiting, not "broken"
        assert os.path.exists(os.path.join(settings.pickup_dir, "later.py"))
        proxy.start()  # back
        pickup.retry_at = dict.fromkeys(pickup.retry_at, 0.0)  # instead of waiting pickup.RETRY
        processed = os.path.join(settings.pickup_dir, "processed", "later.py")
        assert ticked_until(lambda: os.path.exists(processed))
        assert [m.name for m in odb_api.list_modules(odb, cluster)] == ["later"]
    finally:
        proxy.stop()
        with odb.session() as s:
            s.query(Cluster).filter(Cluster.name == cluster).delete()  # cascades to its modules
        odb.dispose()


def pubsub_clients_of(pid: int) -> list[str]:
    """Redis CLIENT ids of the pub/sub connections that process `pid` holds (found by their
    local ports through `ss`), so that a test can cut exactly those."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "( dport = :6379 )"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    ports = {line.split()[2].rsplit(":", 1)[1] for line in out.splitlines() if f"pid={pid}," in line}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return [
            str(c["id"]) for c in client.client_list(_type="pubsub") if c["addr"].rsplit(":", 1)[1] in ports
        ]
    finally:
        client.close()


def test_a_worker_resubscribed_while_the_odb_is_away_reads_it_once_it_is_back(quickstart):
    """Before, the read of the ODB that follows a new subscription failed once and was not
    tried again: a channel made while the worker was not subscribed stayed a 404 on it until
    its next reconnection to Redis."""
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    direct = ODB(PG_URL)
    try:
        qs, base, url = serving(quickstart, proxy.port)
        worker = [pid for pid, ppid, cmd in process_table() if ppid == qs.pid("server1") and b"worker" in cmd]
        assert len(worker) == 1, worker
        proxy.stop()  # the ODB is away for the server
        ch = odb_api.make_channel("missed", "/odb/missed", "odb.out")
        odb_api.save_channel(direct, qs.cluster, ch)  # made meanwhile, its event unheard
        ids = pubsub_clients_of(worker[0])
        assert ids, "the worker's subscription to config events"
        admin = redis.Redis.from_url(REDIS_URL)
        for client_id in ids:
            admin.client_kill_filter(_id=client_id)  # the worker subscribes again at once
        admin.close()
        wait_for(lambda: "reconciling with the ODB failed" in qs.server_logs(), 30, what="a failed read")
        assert requests.get(f"{base}/odb/missed?conn=known", timeout=5).status_code == 404
        proxy.start()  # back
        wait_for(lambda: requests.get(f"{base}/odb/missed?conn=known", timeout=5).ok, 20, what="the channel")
        # the channel table is new before reconcile() reads the user-config files and logs
        wait_for(lambda: "is up to date again" in qs.server_logs(), 10, what="the line saying so")
    finally:
        proxy.stop()
        proxy.start()
        direct.dispose()


def test_an_http_channel_saved_while_the_odb_is_away_is_a_503_and_saved_once_it_is_back(quickstart):
    """A channel saved through the admin API while the ODB cannot be reached was answered 400,
    as if the request were wrong (a client does not send it again), while every other change
    (connections, deploy, a channel's deletion) said 503."""
    port = free_port()
    proxy = TCPProxy(port, ("127.0.0.1", 5432))
    proxy.start()
    try:
        qs = quickstart(servers=1, workers=1, odb=PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{port}"))
        qs.start()
        url = f"{qs.server_url('server1')}/zato/admin/channels"
        channel = {"name": "orders", "url_path": "/orders", "service": "orders.get"}
        proxy.stop()
        away = requests.post(url, json=channel, auth=qs.admin_auth, timeout=60)
        assert away.status_code == 503, away.text
        assert "Connection refused" in away.json()["zato_env"]["details"]
        proxy.start()
        back = requests.post(url, json=channel, auth=qs.admin_auth, timeout=60)
        assert back.status_code == 201, back.text
    finally:
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly


def test_a_worker_whose_change_waits_for_a_locked_sqlite_odb_serves_its_other_requests(quickstart):
    """A sqlite3 shell (or a backup) holds the SQLite ODB's write lock while a module is undeployed
    through the admin API: SQLite's busy wait (up to 30 s) slept in C and held the whole worker,
    /zato/ping included, so HAProxy's checks of it timed out. Now the worker serves its other
    requests meanwhile, and the change is made once the lock is let go."""
    import sqlite3

    qs = quickstart(servers=1, lb=False, workers=1, cluster=cluster_name("sqlite-locked"))
    qs.start("server1")
    qs.deploy("locked_mod", "x = 1\n")
    base = qs.server_url("server1")
    shell = sqlite3.connect(os.path.join(qs.path, "odb.db"), isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")  # the write lock, held until the test lets it go
    try:
        undeployed: list = []
        undeploy = f"{base}/zato/admin/deploy/locked_mod"
        delete = lambda: requests.delete(undeploy, auth=qs.admin_auth, timeout=60)  # noqa: E731
        waiting = threading.Thread(target=lambda: undeployed.append(delete()))
        waiting.start()
        for _ in range(10):  # answered while the undeploy waits for the lock (before: a read timeout)
            assert requests.get(f"{base}/zato/ping", timeout=10).ok
            time.sleep(0.2)
        assert waiting.is_alive()  # it still waits for the lock
    finally:
        shell.execute("ROLLBACK")
        shell.close()
    waiting.join(60)
    answer = undeployed[0]
    assert (answer.status_code, answer.json()) == (200, {"module": "locked_mod", "services": []}), answer.text
