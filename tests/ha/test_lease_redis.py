"""The lease when Redis goes away and comes back, and two clusters sharing one Redis."""

from __future__ import annotations

import signal
import subprocess

import pytest
import redis
import requests

from tests.ha.cluster_view import cluster_status, ensure_running, holder, log_of
from tests.ha.supervised import SupervisedCluster
from tests.support import free_port, wait_for
from zato.coord import membership
from zato.coord.signing import member_key


class OwnRedis:
    """A throw-away redis-server on a free port, stopped and started again by its pid."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(client.ping, timeout=15, what="the test's own redis-server")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def own_redis():
    r = OwnRedis()
    r.start()
    yield r
    r.stop()


def test_redis_restart_leaves_exactly_one_holder_with_a_higher_epoch(own_redis, quickstart) -> None:
    qs = quickstart(servers=2, lb=False, extra_conf={"kvdb": {"url": own_redis.url, "socket_timeout": "0.5"}})
    qs.start()
    ensure_running(qs)
    old, epoch = holder(qs)
    # The claim needs every server to have seen the epoch before Redis loses it: a server that
    # never saw epoch N cannot know to go above it (see the note in zato/coord/lease.py).
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    key = member_key(qs.settings("server1").cluster_secret, qs.cluster)
    wait_for(
        lambda: (
            all(m.seen_epoch >= epoch for m in membership.live_servers(client, qs.cluster, key))
            and len(membership.live_servers(client, qs.cluster, key)) == 2
        ),
        what="both servers to have seen the epoch",
    )
    client.close()
    own_redis.stop()
    wait_for(
        lambda: f"stepped down from lease epoch {epoch}" in log_of(qs, old),
        timeout=30,
        what="the holder to step down without Redis",
    )
    assert "Redis unreachable" in log_of(qs, old)
    for name in qs.server_names:  # HTTP goes on without Redis
        assert requests.get(f"{qs.server_url(name)}/zato/ping", timeout=10).status_code == 200
    standby = next(n for n in qs.server_names if n != old)
    wait_for(lambda: "Redis unreachable" in log_of(qs, standby), 30, what="the standby finding Redis gone")
    own_redis.start()
    _, new_epoch = holder(qs, timeout=60)
    assert new_epoch > epoch

    def one_holder() -> bool:
        servers = cluster_status(qs.path)["servers"]
        return [s["role"] for s in servers].count("holder") == 1 and all(s["live"] for s in servers)

    wait_for(one_holder, timeout=30, what="exactly one server acting as holder")
    assert any("Redis answers again" in log_of(qs, n) for n in qs.server_names)


def test_two_clusters_sharing_one_redis_do_not_see_each_other() -> None:
    a, b = SupervisedCluster(size=2), SupervisedCluster(size=2)
    try:
        a.start_all()
        b.start_all()
        ha, hb = a.wait_holder(), b.wait_holder()
        assert ha["epoch"] == hb["epoch"] == 1  # each cluster has its own lease and epoch
        for c in (a, b):  # same server names in both: each cluster sees only its own two
            wait_for(lambda c=c: _live(c) == ["server1", "server2"], what=f"the members of {c.cluster}")
        a.stop(ha["server"])
        assert a.wait_holder(exclude=(ha["server"],))["epoch"] == 2
        assert b.holder() == hb
        assert _live(b) == ["server1", "server2"]
        assert "acquired lease epoch 2" not in b.log("server1") + b.log("server2")
    finally:
        a.close()
        b.close()


def _live(c: SupervisedCluster) -> list[str]:
    return [s["name"] for s in cluster_status(c.dirs["server1"])["servers"] if s["live"]]
