"""Redis is not trusted: forged or odd entries written by anyone who can reach Redis (which
often has no password) must not run code, steal traffic or stop a component.

Each test is an attack from issue 15, run against a real cluster (one server, the LB, the
shared Redis) or against the coordination code and the real Redis directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests

from tests.support import (
    REDIS_URL,
    cleanup_redis,
    cluster_name,
    free_port,
    signed_headers,
    sqlite_server,
    wait_for,
    zato,
)
from zato.common.errors import LBError
from zato.common.pidfile import pid_alive
from zato.config.settings import RedisSettings, load_lb_settings
from zato.connector.invoke import Invoker
from zato.coord import membership, status
from zato.coord.client import accepts_anonymous
from zato.coord.keys import Keys
from zato.coord.lease import current_epoch, read_holder
from zato.coord.parse import BadEntry
from zato.coord.signing import member_key
from zato.coord.turn import deploy_turn
from zato.lb.controller import servers_in_file
from zato.lb.haproxy import find_binary, validate
from zato.lb.render import render
from zato.lb.status import describe

RECONCILE_SETTLE = 1.0  # the LB reconciles every 0.25 s: an entry that got through shows by then


@pytest.fixture(scope="module")
def qs(module_quickstart):
    cluster = module_quickstart(servers=1)
    cluster.start()
    wait_for(lambda: lb_servers(cluster) == {"server1": "UP"}, 30, what="server1 UP in the LB")
    # HAProxy gets a server through its Runtime API first and haproxy.cfg a moment later (after
    # haproxy -c): tests that compare the file before and after wait for it to list server1 too
    cfg = os.path.join(cluster.lb_dir, "config", "haproxy.cfg")
    wait_for(
        lambda: [b.name for b in servers_in_file(open(cfg).read())] == ["server1"],
        30,
        what="server1 in haproxy.cfg",
    )
    return cluster


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield c
    c.close()


def lb_servers(qs) -> dict[str, str]:
    return {s["name"]: s["state"].split()[0] for s in describe(qs.lb_dir)["servers"]}


def lb_log(qs) -> str:
    with open(os.path.join(qs.lb_dir, "logs", "lb.log"), errors="replace") as f:
        return f.read()


DEEP = "[" * 100_000 + "]" * 100_000  # JSON deeper than json.loads goes


def forge(client: redis.Redis, cluster: str, name: str, entry: dict | str) -> None:
    """What an attacker with access to Redis writes: a member entry and its index, then the
    change notice that wakes the LB."""
    keys = Keys(cluster)
    client.set(keys.member(name), entry if isinstance(entry, str) else json.dumps(entry), px=60_000)
    client.sadd(keys.members, name)
    client.publish(keys.members_channel, json.dumps({"name": name, "event": "joined"}))


def unforge(client: redis.Redis, cluster: str, name: str) -> None:
    keys = Keys(cluster)
    client.delete(keys.member(name))
    client.srem(keys.members, name)


def member_fields(name: str, port: object) -> dict:
    return {"name": name, "host": "127.0.0.1", "port": port, "pid": 4242, "started_at": time.time()}


class Listener:
    """The attacker's HTTP listener: answers /zato/ping like a server and counts every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.port = free_port()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                listener.requests.append((self.path, dict(self.headers)))
                body = b'{"zato_env": {"result": "ZATO_OK"}}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_member_port_with_newlines_never_reaches_haproxy_cfg_nor_runs_code(qs, client, tmp_path):
    cfg = os.path.join(qs.lb_dir, "config", "haproxy.cfg")
    before = open(cfg).read()
    owned, lua = tmp_path / "owned", tmp_path / "evil.lua"
    lua.write_text(f'local f = io.open("{owned}", "w")\nf:write("owned")\nf:close()\n')
    lua.chmod(0o644)
    port = f"28998\nglobal\n    lua-load {lua}\n#"
    try:
        forge(client, qs.cluster, "evil", member_fields("evil", port))
        wait_for(lambda: "evil" in lb_log(qs), 15, what="the LB to read the forged entry")
        time.sleep(RECONCILE_SETTLE)
        assert not owned.exists(), "the forged entry ran code in the LB's haproxy -c"
        assert open(cfg).read() == before
        assert lb_servers(qs) == {"server1": "UP"}
        assert requests.get(qs.lb_url + "/zato/ping", timeout=5).status_code == 200
    finally:
        unforge(client, qs.cluster, "evil")


def test_a_member_entry_nested_too_deeply_is_ignored_and_the_lb_keeps_its_servers(qs, client):
    """A member entry of JSON nested deeper than a parser goes is skipped like any malformed
    one. Before, json raised RecursionError (not ValueError) through every reader of the member
    list: the LB controller could not read its servers while the entry was there."""
    try:
        forge(client, qs.cluster, "deep", DEEP)
        wait_for(lambda: "'deep'" in lb_log(qs), 15, what="the LB to read the forged entry")
        time.sleep(RECONCILE_SETTLE)
        assert "ignoring member entry 'deep': not JSON" in lb_log(qs)
        assert "RecursionError" not in lb_log(qs)
        assert lb_servers(qs) == {"server1": "UP"}
        assert requests.get(qs.lb_url + "/zato/ping", timeout=5).status_code == 200
        out = zato("cluster", "status", qs.path, check=False).stdout
        assert "server1" in out
    finally:
        unforge(client, qs.cluster, "deep")


def test_an_unsigned_member_gets_no_traffic_and_no_credentials(qs, client):
    thief = Listener()
    try:
        forge(client, qs.cluster, "thief", {**member_fields("thief", thief.port), "sig": "0" * 64})
        wait_for(lambda: "thief" in lb_log(qs), 15, what="the LB to read the forged entry")
        time.sleep(RECONCILE_SETTLE)
        auth = qs.admin_auth
        for _ in range(10):
            r = requests.get(qs.lb_url + "/zato/admin/services", auth=auth, timeout=5)
            assert r.status_code == 200
        assert lb_servers(qs) == {"server1": "UP"}
        assert thief.requests == []  # not even a health check
    finally:
        unforge(client, qs.cluster, "thief")
        thief.close()


def test_connectors_call_only_signed_members_and_survive_odd_ones(client):
    cluster, secret = cluster_name("trust"), "the cluster secret"
    key = member_key(secret, cluster)
    try:
        real = membership.Member("server1", "127.0.0.1", 17010, 4242, time.time())
        membership.announce(client, cluster, real, 30, key)
        thief = membership.Member("thief", "127.0.0.1", 17099, 4242, time.time())
        forge(client, cluster, "thief", membership.entry(thief, b"x" * 32, 30))  # another key
        forge(client, cluster, "abc", member_fields("abc", "abc"))  # crashed the connector
        forge(client, cluster, "copy", membership.entry(real, key, 30))  # a real entry under another name
        stopped = membership.Member("stopped", "127.0.0.1", 17098, 4242, time.time())
        old = membership.entry(stopped, key, 3, at=time.time() - membership.MAX_ENTRY_AGE - 5)
        forge(client, cluster, "stopped", old)  # a stopped server's real entry, written back
        forge(client, cluster, "notjson", "{")
        forge(client, cluster, "listy", "[1, 2]")
        forge(client, cluster, "deep", DEEP)  # RecursionError, not ValueError, from json
        invoker = Invoker(client, cluster, b"epoch key", epoch=1, members=key)
        assert invoker.servers() == ["127.0.0.1:17010"]
        assert [m.name for m in membership.live_servers(client, cluster, key)] == ["server1"]
    finally:
        cleanup_redis(cluster)


def test_odd_lease_values_leave_status_readable(client):
    cluster = cluster_name("trust")
    keys = Keys(cluster)
    try:
        client.set(keys.epoch, "abc")
        client.set(keys.lease, "token", px=30_000)
        client.set(keys.lease_info, json.dumps({"server": "a\nb", "epoch": "7", "since": []}))
        client.set(keys.supervisor_status, json.dumps({"epoch": 7, "children": "all"}))
        with pytest.raises(BadEntry, match="not a whole number"):
            current_epoch(client, cluster)
        assert read_holder(client, cluster) is None
        view = status.collect(client, cluster, key=member_key("s", cluster))
        assert view["lease"]["holder"] is None and view["children"] == []
        assert any("lease epoch" in e for e in view["errors"])
        client.set(keys.lease_info, DEEP)
        client.set(keys.supervisor_status, DEEP)
        client.set(keys.epoch, "7")
        assert read_holder(client, cluster) is None
        view = status.collect(client, cluster, key=member_key("s", cluster))
        assert view["lease"]["holder"] is None and view["children"] == []
    finally:
        cleanup_redis(cluster)


def internal_ping(qs, epoch: str) -> requests.Response:
    """What a connector of `epoch` sends (signed with its epoch's key)."""
    headers = {**signed_headers(qs.cluster_secret, int(epoch), "zato.ping", b"{}"), "X-Zato-Epoch": epoch}
    headers["Content-Type"] = "application/json"
    url = qs.server_url("server1") + "/zato/internal/invoke/zato.ping"
    return requests.post(url, data=b"{}", headers=headers, timeout=5)


def holder_epoch(client: redis.Redis, cluster: str) -> int:
    holder = read_holder(client, cluster)
    return holder.epoch if holder else -1


def test_a_garbled_epoch_is_no_crash_and_the_holder_puts_it_back(qs, client):
    epoch = wait_for(lambda: holder_epoch(client, qs.cluster) > 0 and holder_epoch(client, qs.cluster))
    client.set(Keys(qs.cluster).epoch, "abc")
    answer = internal_ping(qs, str(epoch))
    assert answer.status_code in (200, 503)  # 503 while garbled, 200 once put back; never a 500
    out = zato("cluster", "status", qs.path, check=False)
    assert "Traceback" not in out.stdout + out.stderr
    # 1 (the cluster could not be read) while the epoch is garbled, saying why; 0 once put back
    assert out.returncode == 0 or (out.returncode == 1 and "is not a whole number" in out.stdout), out
    wait_for(
        lambda: client.get(Keys(qs.cluster).epoch) == str(epoch), 10, what="the holder to restore the epoch"
    )
    assert internal_ping(qs, str(epoch)).status_code == 200


def test_a_forged_higher_epoch_makes_the_holder_take_a_newer_one(qs, client):
    epoch = wait_for(lambda: holder_epoch(client, qs.cluster) > 0 and holder_epoch(client, qs.cluster))
    client.set(Keys(qs.cluster).epoch, epoch + 1)  # one above the holder's
    wait_for(
        lambda: holder_epoch(client, qs.cluster) > epoch + 1, 15, what="the holder to re-acquire above it"
    )
    newest = holder_epoch(client, qs.cluster)
    assert internal_ping(qs, str(newest)).status_code == 200
    assert internal_ping(qs, str(epoch)).status_code == 409


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Uid:"))


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_haproxy_workers_and_config_checks_run_unprivileged(qs, tmp_path):
    master = describe(qs.lb_dir)["haproxy"]["pid"]
    workers = [int(p) for p in open(f"/proc/{master}/task/{master}/children").read().split()]
    assert workers and all(uid_of(p) != 0 for p in workers)
    # Should a value ever get through the renderer, `haproxy -c` parses it without root.
    owned = tmp_path / "owned"  # tmp_path is root's own (0700)
    lua_dir = tempfile.mkdtemp(prefix="zato-trust-")
    try:
        os.chmod(lua_dir, 0o755)  # noqa: S103 - the unprivileged check must be able to read it
        lua = os.path.join(lua_dir, "evil.lua")
        with open(lua, "w") as f:
            f.write(f'local f = io.open("{owned}", "w")\nf:write("owned")\nf:close()\n')
        os.chmod(lua, 0o644)
        settings = load_lb_settings(qs.lb_dir)
        text = render(settings, []).replace("global\n", f"global\n    lua-load {lua}\n", 1)
        with contextlib.suppress(LBError):
            validate(find_binary(settings), text, settings)
        assert not owned.exists()
    finally:
        shutil.rmtree(lua_dir)


def test_a_non_utf8_lb_conf_on_sighup_keeps_the_lb_serving(qs):
    conf = os.path.join(qs.lb_dir, "config", "lb.conf")
    good = open(conf, "rb").read()
    try:
        with open(conf, "wb") as f:
            f.write(b"[main]\nhost = 127.0.0.1\n# caf\xe9\n")
        qs.kill("load-balancer", signal.SIGHUP)
        wait_for(lambda: "lb.conf not applied" in lb_log(qs), 15, what="the LB to refuse the file")
        assert "not UTF-8" in lb_log(qs) and "Traceback" not in lb_log(qs)
        assert pid_alive(qs.pid("load-balancer"))
        assert requests.get(qs.lb_url + "/zato/ping", timeout=5).status_code == 200
    finally:
        with open(conf, "wb") as f:
            f.write(good)


def test_workers_take_turns_loading_a_hot_deploy(client):
    """At most one worker of the cluster loads a module at any moment (zato/coord/turn.py)."""
    cluster, inside, most = cluster_name("turn"), [0], [0]
    lock = threading.Lock()

    def worker() -> None:
        with deploy_turn(client, cluster, hold=10, wait=30, sleep=time.sleep) as got:
            assert got
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)  # "loading"
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1 and not client.exists(Keys(cluster).deploy_turn)


def test_a_redis_that_takes_anonymous_commands_is_detected():
    assert accepts_anonymous(RedisSettings(url=REDIS_URL)) is True  # the shared test Redis has no password
    assert accepts_anonymous(RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.2)) is False


ASYNC_MODULE = """
from zato.server.service import Service


class Record(Service):
    name = 'trust.record'

    def handle(self):
        self.kvdb.conn.rpush(self.request.payload['into'], self.request.payload['who'])


class Queue(Service):
    name = 'trust.queue'

    def handle(self):
        self.invoke_async('trust.record', self.request.payload)
"""


def test_a_call_queued_in_redis_without_the_cluster_secret_is_not_run(qs, client):
    """A Redis writer pushes an invoke_async call of a deployed service with a payload of its
    choosing: no server runs it. A service's own invoke_async still runs."""
    qs.deploy("trust_async", ASYNC_MODULE)
    wait_for(lambda: "loaded module trust_async" in qs.server_logs(), 30, what="the module loaded")
    ran = f"{qs.cluster}:test:trust-ran"
    forged = {"service": "trust.record", "payload": {"into": ran, "who": "forged"}, "cid": "KFORGEDCALL0"}
    try:
        client.rpush(Keys(qs.cluster).async_queue, json.dumps(forged))
        s = qs.settings("server1")
        answer = requests.post(
            qs.server_url("server1") + "/zato/api/invoke/trust.queue",
            json={"into": ran, "who": "real"},
            auth=(s.invoke_username, s.invoke_password),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        wait_for(lambda: "real" in client.lrange(ran, 0, -1), 30, what="the service's own call run")
        refused = "invoke_async: refused call KFORGEDCALL0 of service trust.record"
        wait_for(
            lambda: "forged" in client.lrange(ran, 0, -1) or refused in qs.server_logs(),
            30,
            what="the forged call run or refused",
        )
        assert "forged" not in client.lrange(ran, 0, -1)
        assert "not signed with this cluster's key" in qs.server_logs()
    finally:
        client.delete(ran)


def test_a_dashboard_without_the_cluster_secret_sends_no_scrape_password_to_a_forged_member(client, tmp_path):
    """A dashboard.conf without [auth] cluster_secret (made before it was there) cannot verify
    member entries: it must not send the servers' [metrics] password to the address of one."""
    from zato.config.settings import DashboardSettings
    from zato.coord.client import connect
    from zato.dashboard.state import Collector

    cluster, thief = cluster_name("dashscrape"), Listener()
    odb, server = sqlite_server(tmp_path, cluster)
    settings = DashboardSettings(
        path=str(tmp_path), cluster=cluster, host="127.0.0.1", port=8183, odb_url=server.odb_url,
        redis=server.redis, admin_username="admin", admin_password="password1",
        metrics_username="metrics", metrics_password="the-scrape-password",
    )  # fmt: skip
    redis_client = connect(settings.redis)
    try:
        forged = membership.Member("server1", "127.0.0.1", thief.port, 4242, time.time())
        forge(client, cluster, "server1", membership.entry(forged, b"x" * 32, 30))  # not the cluster's key
        collector = Collector(settings, redis_client, odb)
        collector.refresh()
        assert [s["name"] for s in collector.snapshot["servers"]] == ["server1"]  # shown, unverified
        assert [path for path, _ in thief.requests] == ["/metrics"]
        assert "Authorization" not in thief.requests[0][1]
    finally:
        redis_client.close()
        odb.dispose()
        thief.close()
        cleanup_redis(cluster)


def test_a_forged_load_balancer_view_writes_no_line_of_its_own_in_a_stopping_servers_log(client):
    """The LB views a stopping server waits on are plain Redis hash fields: an LB id with a line
    break in it made the drain's WARNING start a line of the writer's choosing in server.log."""
    from zato.coord import lb_view
    from zato.server.arbiter import wait_drained

    cluster = cluster_name("lbview")
    forged_id = "lb1:11223\n2026-12-07 03:00:00,000 ERROR zato.server: server1 was compromised"
    said: list[str] = []
    try:
        client.hset(Keys(cluster).lb_views, forged_id, json.dumps(["server1"]))
        ended = wait_drained(
            "server1", 0.2, lambda: lb_view.read(client, cluster), sleep=time.sleep, say=said.append
        )
        assert ended.startswith("no load balancer reports")
        assert len(said) == 1 and "\n" not in said[0] and "lb1:11223\\n2026-12-07" in said[0], said
    finally:
        cleanup_redis(cluster)
