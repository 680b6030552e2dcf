"""Membership keys against the real Redis: join, heartbeat, expiry, graceful leave."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import redis

from tests.conn_support import TCPProxy
from tests.ha.cluster_view import supervisor_pid
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, wait_for, zato
from zato.coord import membership
from zato.coord.keys import Keys
from zato.coord.signing import member_key


def key(cluster: str) -> bytes:
    return member_key("a test secret", cluster)


def member(name: str, port: int) -> membership.Member:
    return membership.Member(name, "127.0.0.1", port, 4242, time.time(), role="standby")


def test_a_server_joins_refreshes_and_leaves(client, cluster) -> None:
    s1 = member("server1", 17010)
    assert membership.refresh(client, cluster, s1, 5, key(cluster)) is True  # new: the caller announces
    membership.announce(client, cluster, s1, 5, key(cluster))
    assert membership.refresh(client, cluster, s1, 5, key(cluster)) is False  # a plain heartbeat
    live = membership.live_servers(client, cluster, key(cluster))
    assert [(m.name, m.address, m.role) for m in live] == [("server1", "127.0.0.1:17010", "standby")]
    membership.withdraw(client, cluster, "server1")
    assert membership.live_servers(client, cluster, key(cluster)) == []


def test_a_server_whose_key_expires_is_gone(client, cluster) -> None:
    membership.announce(client, cluster, member("server1", 17010), 60, key(cluster))
    membership.announce(client, cluster, member("server2", 17011), 0.2, key(cluster))
    wait_for(
        lambda: [m.name for m in membership.live_servers(client, cluster, key(cluster))] == ["server1"],
        timeout=10,
    )
    assert client.smembers(Keys(cluster).members) == {"server1"}


def test_changes_are_published_for_the_load_balancer(client, cluster) -> None:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Keys(cluster).members_channel)
    try:
        membership.publish_change(client, cluster, "server1", "joined")
        msg = wait_for(lambda: pubsub.get_message(timeout=0.2), what="the change notice")
        assert json.loads(msg["data"]) == {"name": "server1", "event": "joined"}
    finally:
        pubsub.close()


def test_two_clusters_sharing_redis_do_not_see_each_other(client) -> None:
    a, b = cluster_name("memb"), cluster_name("memb")
    try:
        membership.announce(client, a, member("server1", 17010), 5, key(a))
        membership.announce(client, b, member("server1", 18010), 5, key(b))
        assert [m.port for m in membership.live_servers(client, a, key(a))] == [17010]
        assert [m.port for m in membership.live_servers(client, b, key(b))] == [18010]
        membership.withdraw(client, a, "server1")
        assert [m.port for m in membership.live_servers(client, b, key(b))] == [18010]
    finally:
        cleanup_redis(a)
        cleanup_redis(b)


def test_a_server_withdraws_only_its_own_entry(client, cluster) -> None:
    real = member("server1", 17010)
    membership.announce(client, cluster, real, 30, key(cluster))
    impostor = membership.Member("server1", "127.0.0.1", 17099, 999, time.time())  # same name, not it
    assert membership.withdraw(client, cluster, "server1", owner=impostor) is False
    assert [m.port for m in membership.live_servers(client, cluster, key(cluster))] == [17010]
    assert membership.withdraw(client, cluster, "server1", owner=real) is True
    assert membership.live_servers(client, cluster, key(cluster)) == []


def test_a_host_whose_clock_is_ten_minutes_off_stays_in_the_cluster(quickstart, monkeypatch) -> None:
    """Entries are stamped and checked with Redis's clock. Before, with each host's own: a
    server on a host 10 minutes ahead was refused by every other host ("its signed time 'at'
    is more than 60 s ahead of this host's clock"), outside the LB and the cluster while it
    served on, and it refused the others' entries as too old. Here this test's process is
    that host (its time.time() 600 s ahead, for our code and the Redis client alike), writing
    server2's heartbeat as its supervisor does; the real server1 and `zato cluster status`
    run on the true clock."""
    qs = quickstart(servers=2)
    qs.start("server1")
    client = redis.Redis.from_url(qs.settings("server1").redis.url)
    secret = member_key(qs.cluster_secret, qs.cluster)
    before = redis.Redis.from_url(qs.settings("server1").redis.url)  # its clock offset: the true one
    wait_for(lambda: membership.live_servers(before, qs.cluster, secret), 30, what="server1 live")
    before.close()
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() + 600)
    server2 = membership.Member("server2", "127.0.0.1", qs.settings("server2").port, os.getpid(), time.time())
    membership.announce(client, qs.cluster, server2, 10, secret)
    # the skewed host reads server1's entry, written on the true clock
    assert "server1" in {m.name for m in membership.live_servers(client, qs.cluster, secret)}
    # a host on the true clock reads server2's
    status = json.loads(zato("cluster", "status", qs.path, "--json", check=False).stdout)
    assert {s["name"]: s["live"] for s in status["servers"]} == {"server1": True, "server2": True}
    client.close()


def test_a_host_whose_clock_steps_keeps_the_cluster_in_sight(quickstart, monkeypatch) -> None:
    """A host's clock stepped after its processes measured their offset to Redis's clock (an NTP
    step, a VM resumed with its old time, then set right). Before, each process went on adding
    the offset it measured before the step for up to redis_clock.SYNC_EVERY (30 s): an LB
    controller on that host refused every server's entry ("its signed time 'at' is more than
    60 s old") and, after EMPTY_GRACE, drained them all (its frontend answered 503), and the
    host's own servers, stamped so, were refused by every other host. Now a step of the wall
    clock against the monotonic one has the offset measured again before it is used. This test's
    process is that host: it reads the real server1's entry and writes server2's heartbeat with
    one client, before and after its clock steps 10 minutes ahead."""
    qs = quickstart(servers=2, cluster=cluster_name("reviewha-step"))
    qs.start("server1")
    client = redis.Redis.from_url(qs.settings("server1").redis.url)
    secret = member_key(qs.cluster_secret, qs.cluster)
    wait_for(lambda: membership.live_servers(client, qs.cluster, secret), 30, what="server1 live")
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() + 600)  # the step, after the measurement
    assert "server1" in {m.name for m in membership.live_servers(client, qs.cluster, secret)}
    server2 = membership.Member("server2", "127.0.0.1", qs.settings("server2").port, os.getpid(), time.time())
    membership.announce(client, qs.cluster, server2, 10, secret)
    status = json.loads(zato("cluster", "status", qs.path, "--json", check=False).stdout)
    assert {s["name"]: s["live"] for s in status["servers"]} == {"server1": True, "server2": True}
    client.close()


class PruneHeld(TCPProxy):
    """A way to Redis that holds a reader's command after its MGET of the member entries (the
    prune of those it saw gone) until `release` is set, then sends it on: what a slow link does
    to the reader's last round trip."""

    def __init__(self, port: int, target: tuple[str, int]):
        super().__init__(port, target)
        self.hung, self.release = threading.Event(), threading.Event()
        self._after_mget = False

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        upstream.settimeout(None)
        threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self._after_mget and not self.release.is_set():
                    self.hung.set()
                    self.release.wait()
                self._after_mget = self._after_mget or b"MGET" in data
                upstream.sendall(data)


def test_a_server_that_rejoins_while_a_reader_prunes_it_stays_listed(quickstart) -> None:
    """A reader of the members (the LB, every connector) takes the names whose entries it saw
    gone off the index set. A server whose heartbeat writes its entry again in between (its
    supervisor paused past the ttl, then resumed; back from a partition) put its name back
    first, and the reader's late prune took it off again: listed nowhere while it heartbeats,
    out of the LB (drained) and of the connectors' servers until its 10th heartbeat re-indexed
    it. Here the reader's prune comes through a link that holds it until the heartbeat is done.
    Now a name is pruned only while its entry is still gone."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("reviewha-prune"))
    qs.start("server1")
    s = qs.settings("server1")
    client = redis.Redis.from_url(s.redis.url, decode_responses=True)
    secret, keys = member_key(qs.cluster_secret, qs.cluster), Keys(qs.cluster)
    wait_for(lambda: membership.live_servers(client, qs.cluster, secret), 30, what="server1 live")
    supervisor = supervisor_pid(qs, "server1")
    proxy = PruneHeld(free_port(), (client.connection_pool.connection_kwargs["host"],
                                    client.connection_pool.connection_kwargs["port"]))  # fmt: skip
    proxy.start()
    reader = redis.Redis(host="127.0.0.1", port=proxy.port, db=client.connection_pool.connection_kwargs["db"])
    read: list = []
    notices = client.pubsub(ignore_subscribe_messages=True)
    notices.subscribe(keys.members_channel)  # "joined": its heartbeat wrote its entry and its name
    os.kill(supervisor, signal.SIGSTOP)  # paused past its membership ttl
    try:
        wait_for(lambda: not client.exists(keys.member("server1")), 30, what="server1's entry expired")
        pruning = threading.Thread(
            target=lambda: read.append(membership.live_servers(reader, qs.cluster, secret))
        )
        pruning.start()
        wait_for(proxy.hung.is_set, 30, what="the reader's prune on its way")
    finally:
        os.kill(supervisor, signal.SIGCONT)

    def joined() -> bool:
        msg = notices.get_message(timeout=0.2)
        return bool(msg) and membership.notice(msg["data"]) == {"name": "server1", "event": "joined"}

    wait_for(joined, 30, what="server1 back (its heartbeat)")
    notices.close()
    proxy.release.set()
    pruning.join(30)
    assert read == [[]]  # the reader saw it gone
    assert client.exists(keys.member("server1"))  # it heartbeats
    assert [m.name for m in membership.live_servers(client, qs.cluster, secret)] == ["server1"]
    reader.close()
    client.close()
    proxy.stop()


# A server worker as gunicorn makes it: zato imported by the arbiter, gevent's monkey-patching
# after the fork; then several greenlets (requests: /metrics, a cluster status) read the
# cluster's live servers at once while Redis's clock is due for a measurement.
GEVENT_WORKER_READS = """
import sys
from zato.coord import membership
from zato.coord.signing import member_key
from gevent import monkey
monkey.patch_all()
import gevent, redis
client = redis.Redis.from_url(sys.argv[1])
key = member_key(sys.argv[3], sys.argv[2])
reads = [gevent.spawn(membership.live_servers, client, sys.argv[2], key) for _ in range(5)]
gevent.joinall(reads, timeout=10)
print(sorted(len(r.value) for r in reads if r.successful()))
"""


def test_greenlets_of_a_server_worker_reading_the_live_servers_at_once_all_answer(client, cluster) -> None:
    """Before, the second one blocked the worker's only thread on the clock's lock, a real one
    (made at import, before the monkey-patching), held by the first while it waited on Redis:
    the worker answered nothing more, and `zato stop` killed the arbiter after 30 s with that
    worker left behind, holding the server's port."""
    membership.announce(client, cluster, member("server1", 17010), 30, key(cluster))
    try:
        done = subprocess.run(
            [sys.executable, "-c", GEVENT_WORKER_READS, REDIS_URL, cluster, "a test secret"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker hung: its greenlets never answered") from None
    assert done.stdout.strip() == "[1, 1, 1, 1, 1]", done.stderr  # each read found server1
