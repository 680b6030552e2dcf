"""The dashboard (a real process, next to a real server) when the ODB cannot be reached or
Redis refuses: every action that needs it answers 503 naming what is away and how (no
traceback, no password), login and the state page keep answering, and once it is back the
same actions work again with no restart. test_dashboard_outages covers Redis not answering
at all and the AMQP broker."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from tests.conn_support import Rabbit, TCPProxy
from tests.integration.test_dashboard import Operator
from tests.integration.test_dashboard_outages import parked, post
from tests.support import PG_URL, cluster_name, free_port, private_redis, wait_for, zato
from zato.coord.keys import Keys

MODULE = """
from zato.server.service import Service


class Nobody(Service):
    name = "dash503.nobody"

    def handle(self):
        self.response.payload = {"ok": True}
"""


@pytest.fixture
def rabbit():
    r = Rabbit()
    yield r
    r.close()


def connections(qs, queue: str) -> None:
    """An AMQP definition, an outgoing connection out1 and a channel orders (on `queue`)."""
    zato("conn", "create", "amqp-def", qs.path, "--name", "local", "--password", "guest")
    zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out1", "--def", "local",
         "--exchange", "amq.topic", "--routing-key", "dash503.nobody")  # fmt: skip
    zato("conn", "create", "amqp-channel", qs.path, "--name", "orders", "--def", "local", "--queue", queue,
         "--service", "dash503.nobody")  # fmt: skip


def deploy(op: Operator) -> tuple[int, str]:
    r = op.http.post(
        op.url + "api/deploy",
        headers={"X-CSRF-Token": op.csrf},
        files={"module": ("dash503_mod.py", MODULE.encode())},
        timeout=60,
    )
    doc = r.json()
    return r.status_code, doc.get("result") or doc.get("error", r.text)


def dashboard_log(qs) -> str:
    with open(os.path.join(qs.dashboard_dir, "logs", "dashboard.log")) as f:
        return f.read()


ACTIONS = (
    "api/servers/server1/drain",
    "api/servers/server1/ready",
    "api/connectors/amqp-outgoing:out1/restart",
    "api/outgoing/amqp/out1/resend",
    "api/channels/amqp/orders/replay",
    "api/async/requeue",
    "api/modules/dash503_mod/undeploy",
    "api/servers/gone1/forget",
)


def answers(op: Operator) -> dict:
    """Every action's (status, result or error), the deploy's under "api/deploy"."""
    done = {path: post(op, path) for path in ACTIONS}
    done["api/deploy"] = deploy(op)
    return done


def odb_cluster(quickstart, proxy: TCPProxy, rabbit: Rabbit) -> tuple:
    """One server and the dashboard on a PostgreSQL ODB reached through `proxy`, the
    connections the actions name, a module deployed; (quickstart, dashboard URL)."""
    odb = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    qs = quickstart(servers=1, lb=False, odb=odb, cluster=cluster_name("dash503"))
    qs.start()
    qs.start("dashboard")
    connections(qs, parked(rabbit, 0))
    url = f"http://127.0.0.1:{qs.dashboard_port}/"
    assert deploy(Operator(url, *qs.admin_auth))[0] == 200
    return qs, url


def test_actions_with_the_odb_away_are_503_naming_the_odb_and_work_again_once_it_is_back(quickstart, rabbit):
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))  # the ODB, which the test takes away
    proxy.start()
    try:
        qs, url = odb_cluster(quickstart, proxy, rabbit)
        proxy.stop()  # the ODB is away
        op = Operator(url, *qs.admin_auth)  # logging in needs neither the ODB nor Redis
        refused = f'connection to server at "127.0.0.1", port {proxy.port} failed: Connection refused'
        away = [f"ODB: ODB error: (psycopg.OperationalError) connection failed: {refused}"]
        # (a read on a pooled connection the ODB's going cut may say "server closed the connection
        # unexpectedly" first: the pool is dropped then, and every read after says it is refused)
        wait_for(lambda: op.state()["errors"] == away, 30, what="the ODB error")
        state = op.state()
        assert state["errors"] == away
        assert state["redis_ok"] and [s["name"] for s in state["servers"]] == ["server1"], state
        assert op.http.get(url, timeout=10).status_code == 200  # the page itself
        said = answers(op)
        assert said.pop("api/async/requeue")[0] == 200  # parked invoke_async calls: Redis alone
        for path, (status, error) in said.items():
            assert status == 503, (path, error)
            assert error.endswith(f": ODB error: (psycopg.OperationalError) connection failed: {refused}"), (
                error
            )
        log = dashboard_log(qs)
        assert "Traceback" not in log, log
        assert ":postgres@" not in json.dumps(said) + json.dumps(state) + log

        proxy.start()  # back: the same dashboard works again
        wait_for(lambda: not op.state()["errors"], 30, what="the state without errors")
        said = answers(op)
        assert {path: status for path, (status, _) in said.items()} == {
            **{path: 200 for path in ACTIONS},
            "api/deploy": 200,
            "api/servers/gone1/forget": 404,  # no such server: the ODB answered (400 before)
        }, said
    finally:
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly


class Hole:
    """A port that takes connections (the kernel's handshake) and never answers on them."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.kept: list[socket.socket] = []

    def taken(self) -> bool:
        """True once someone connected (kept open, never answered)."""
        try:
            self.kept.append(self.sock.accept()[0])
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        for conn in [*self.kept, self.sock]:
            conn.close()


def test_an_odb_host_that_does_not_answer_holds_only_the_actions_that_need_it(quickstart, rabbit):
    """The ODB's port takes connections and never answers (a host behind a dead link): an
    action that needs it answers 503 once PostgreSQL's connect_timeout is over, and meanwhile
    the dashboard serves its other requests (the page, the state, login)."""
    proxy = TCPProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    hole = None
    try:
        qs, url = odb_cluster(quickstart, proxy, rabbit)
        op = Operator(url, *qs.admin_auth)
        proxy.stop()
        hole = Hole(proxy.port)  # the ODB's port now takes connections and never answers
        held: list = []
        waiting = threading.Thread(target=lambda: held.append(post(op, "api/servers/server1/drain")))
        waiting.start()
        wait_for(hole.taken, 30, what="the dashboard connecting to the ODB")
        assert op.http.get(url, timeout=10).status_code == 200
        assert op.state()["cluster"] == qs.cluster
        Operator(url, *qs.admin_auth)
        assert waiting.is_alive()  # all three answered while the drain still waited for the ODB
        waiting.join(60)
        status, error = held[0]
        assert status == 503, error
        timeout = (
            "ODB error: the ODB did not answer within libpq's connect_timeout while being connected"
            " to (10 s unless the ODB URL sets it) (psycopg.errors.ConnectionTimeout: connection timeout"
            " expired)"
        )
        assert error == f"drain server server1: {timeout}"
        assert "Traceback" not in dashboard_log(qs)
    finally:
        if hole is not None:
            hole.close()
        proxy.stop()
        proxy.start()  # back, so the quickstart stops cleanly
    wait_for(
        lambda: post(op, "api/servers/server1/drain")[0] == 200, 60, what="the drain once the ODB is back"
    )


USER, PASSWORD = "dash503-user", "dash503-redis-password-not-to-be-shown"


def refused(said: dict, paths: tuple, text: str) -> dict:
    """The answers of `paths` that are not a 503 with `text` in their error, and of the other
    actions those that are not a 200."""
    wrong = {p: a for p, a in said.items() if p in paths and (a[0] != 503 or text not in a[1])}
    return wrong | {p: a for p, a in said.items() if p not in paths and a[0] != 200}


def test_actions_with_redis_refusing_are_503_saying_so_and_work_again_once_it_takes_them(quickstart, rabbit):
    """Redis answers and refuses: its ACL refuses a command to the dashboard's user (NOPERM;
    before: 400, as for a bad request), or it is a replica (READONLY: every write refused)."""
    with private_redis() as (port, admin):
        cluster = cluster_name("dash503")
        keys = Keys(cluster)
        url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
        admin.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", *keys.acl_rules())
        qs = quickstart(servers=1, lb=False, cluster=cluster, extra_conf={"kvdb": {"url": url}})
        qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), "kvdb", {"url": url})
        qs.start()
        qs.start("dashboard")
        connections(qs, parked(rabbit, 0))
        dash = f"http://127.0.0.1:{qs.dashboard_port}/"
        op = Operator(dash, *qs.admin_auth)
        assert deploy(op)[0] == 200

        # An ACL that refuses a command the actions need: PUBLISH (config events, drain notices).
        admin.execute_command("ACL", "SETUSER", USER, "-@pubsub")
        op = Operator(dash, *qs.admin_auth)  # logging in needs neither Redis nor the ODB
        said = answers(op)
        acl = "Redis's ACL refuses it to the user of [kvdb] url (NOPERM: this user has no permissions to run"
        acl += " the"
        publishing = (
            "api/servers/server1/drain",
            "api/servers/server1/ready",
            "api/connectors/amqp-outgoing:out1/restart",
            "api/modules/dash503_mod/undeploy",
            "api/deploy",
        )
        said.pop("api/servers/gone1/forget")  # no such server (404): the ACL does not come into it
        assert refused(said, publishing, f"{acl} 'publish' command); grant it (docs/redis-acl.md)") == {}, (
            said
        )
        assert said["api/servers/server1/drain"] == (
            503,
            f"drain server server1: operator drain: {acl} 'publish' command); grant it (docs/redis-acl.md)",
        )
        assert said["api/deploy"] == (
            503,
            "deploy: module dash503_mod version 1 is saved in the ODB, but the servers were not told"
            f" (publishing a config event: {acl} 'publish' command); grant it (docs/redis-acl.md)); their"
            " own Redis connections are fine, so each applies it only when it restarts: restart them once"
            " the event can be published",
        )
        assert op.state()["cluster"] == cluster

        # A replica: Redis takes reads, and refuses every write. Something parked to move back.
        admin.execute_command("ACL", "SETUSER", USER, "+@pubsub")
        admin.lpush(keys.out_parked("amqp", "out1"), "dash503")
        admin.lpush(keys.async_parked, "dash503")
        admin.replicaof("127.0.0.1", free_port())
        op = Operator(dash, *qs.admin_auth)
        said = answers(op)
        writing = (
            "api/servers/server1/drain",
            "api/servers/server1/ready",
            "api/outgoing/amqp/out1/resend",
            "api/async/requeue",
        )
        readonly = (
            "Redis refuses writes (READONLY: it is a replica): You can't write against a read only replica."
        )
        # a change or a restart: refused before anything is done, since a replica takes PUBLISH
        # and tells none of the servers (before: 200, and no server ever heard of it); a forget
        # too (before: the ODB row went, then Redis refused to take the drain hold off)
        told = (
            "api/connectors/amqp-outgoing:out1/restart",
            "api/modules/dash503_mod/undeploy",
            "api/deploy",
            "api/servers/gone1/forget",
        )
        replica = (
            f"Redis at {url.replace(PASSWORD, '******')} is a read-only replica (READONLY: You can't write"
        )
        assert refused({p: said[p] for p in told}, told, replica) == {}, said
        assert all(said[p][1].count("check [kvdb] url: it must name the master") == 1 for p in told), said
        assert refused({p: a for p, a in said.items() if p not in told}, writing, readonly) == {}, (
            said
        )  # the rest only read
        assert said["api/outgoing/amqp/out1/resend"] == (
            503,
            f"re-send parked amqp out1: re-sending parked messages of outgoing amqp 'out1': {readonly};"
            " check [kvdb] url: it must name the master, not a replica (behind Sentinel: a failover may"
            " be under way; [kvdb] sentinels and sentinel_master say which master the Sentinels give)",
        )
        assert all("check [kvdb] url: it must name the master" in said[p][1] for p in writing), said
        assert op.state()["cluster"] == cluster
        log = dashboard_log(qs)
        assert "Traceback" not in log, log
        assert PASSWORD not in log

        admin.replicaof("NO", "ONE")  # a master again: the same dashboard works again
        admin.delete(keys.out_parked("amqp", "out1"), keys.async_parked)
        said = answers(op)
        said.pop("api/servers/gone1/forget")
        assert {path: status for path, (status, _) in said.items() if status != 200} == {}, said
        assert "Traceback" not in dashboard_log(qs)


def test_an_action_refused_for_a_key_of_another_type_is_503_naming_the_key(quickstart):
    """The operators' drain holds (a set) replaced by a string, as another Redis client might:
    Redis answers the drain WRONGTYPE. Before: 400, as if the request were bad, naming no key."""
    import redis

    from tests.support import REDIS_URL

    qs = quickstart(servers=1, lb=False)
    qs.start("server1")
    qs.start("dashboard")
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    held = Keys(qs.cluster).operator_drained
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        admin.set(held, "written by another client")
        status, error = post(op, "api/servers/server1/drain")
        assert status == 503, (status, error)
        assert error.startswith("drain server server1: operator drain: ResponseError: WRONGTYPE "), error
        assert error.endswith(
            f"{held} holds another type than the cluster keeps there (written by another Redis client?): see"
            f" what wrote it, then delete it (redis-cli DEL {held}; docs/trust.md)"
        ), error
        admin.delete(held)  # mended: the same click works
        assert post(op, "api/servers/server1/drain")[0] == 200
        assert "Traceback" not in dashboard_log(qs)
    finally:
        admin.close()
