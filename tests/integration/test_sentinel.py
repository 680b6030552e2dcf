"""Redis behind Sentinel: a real master, replica and sentinel of our own; a one-server cluster
finds the master through Sentinel, and keeps working after Sentinel promotes the replica."""

from __future__ import annotations

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import redis
import requests

from tests.support import free_port, lb_up, wait_for, zato
from zato.config.settings import RedisSettings, load_server_settings
from zato.coord.client import connect
from zato.coord.lease import read_holder
from zato.coord.membership import live_servers
from zato.coord.signing import member_key

MASTER = "mymaster"


class RedisGroup:
    """A master, a replica and one sentinel, each a redis-server we started (stopped by pid)."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, *args: str) -> None:
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(["redis-server", *args], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self._spawn("master", "--port", str(self.master_port), *common, "--dbfilename", "m.rdb")
        self._spawn(
            "replica",
            "--port",
            str(self.replica_port),
            *common,
            "--dbfilename",
            "r.rdb",
            "--replicaof",
            "127.0.0.1",
            str(self.master_port),
        )
        wait_for(
            lambda: self.client(self.replica_port).info("replication")["master_link_status"] == "up",
            what="the replica to sync",
        )
        conf = os.path.join(self.tmp, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(
                f"bind 127.0.0.1\ndir {self.tmp}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 1\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 3000\n"
            )
        self._spawn("sentinel", conf, "--sentinel", "--port", str(self.sentinel_port))
        wait_for(
            lambda: self.client(self.sentinel_port).sentinel_slaves(MASTER),
            what="the sentinel to discover the replica",
        )

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1, decode_responses=True)

    def master_address(self) -> tuple[str, int]:
        host, port = self.client(self.sentinel_port).sentinel_get_master_addr_by_name(MASTER)
        return host, int(port)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(name)


def test_quickstart_writes_sentinels(tmp_path):
    path = str(tmp_path / "qs")
    zato(
        "quickstart",
        "create",
        path,
        "--servers",
        "1",
        "--sentinels",
        "127.0.0.1:26379, 127.0.0.1:26380",
        "--sentinel-master",
        MASTER,
        "--base-port",
        str(free_port()),
        "--lb-port",
        str(free_port()),
    )
    s = load_server_settings(os.path.join(path, "server1")).redis
    assert s.sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert s.sentinel_master == MASTER
    joined = str(tmp_path / "server2")
    zato("create", "server", joined, "--join", os.path.join(path, "server1"), "--port", str(free_port()))
    assert load_server_settings(joined).redis == s
    bad = zato("quickstart", "create", str(tmp_path / "bad"), "--sentinels", "nohost", check=False)
    assert bad.returncode == 1 and "--sentinels" in bad.stderr and "Traceback" not in bad.stderr
    bad = zato("quickstart", "create", str(tmp_path / "bad2"), "--sentinels", "127.0.0.1:1", check=False)
    assert bad.returncode == 1 and "--sentinel-master" in bad.stderr


def test_cluster_follows_the_master_sentinel_promotes(quickstart, redis_group):
    kvdb = {"sentinels": f"127.0.0.1:{redis_group.sentinel_port}", "sentinel_master": MASTER}
    qs = quickstart(servers=2, extra_conf={"kvdb": kvdb, "lb:kvdb": kvdb})
    qs.start("server1", "load-balancer")
    settings = qs.settings("server1").redis
    client = connect(settings)  # through Sentinel, like the server itself
    key = member_key(qs.settings("server1").cluster_secret, qs.cluster)
    ping = requests.get(qs.server_url("server1") + "/zato/ping", timeout=10)
    assert ping.json()["zato_ping_response"] == {"pong": "zato"}
    wait_for(
        lambda: [m.name for m in live_servers(client, qs.cluster, key)] == ["server1"],
        timeout=30,
        what="server1 to be a live member",
    )
    first = wait_for(lambda: read_holder(client, qs.cluster), timeout=30, what="server1 to take the lease")
    assert first.server == "server1"
    # Written through Sentinel to the master we started, not to the Redis in [kvdb] url.
    assert redis_group.client(redis_group.master_port).exists(f"zato:{qs.cluster}:lease")
    wait_for(lambda: lb_up(qs) == {"server1"}, timeout=30, what="server1 UP in the load balancer")

    redis_group.kill("master")
    wait_for(
        lambda: redis_group.master_address()[1] == redis_group.replica_port,
        timeout=60,
        what="Sentinel to promote the replica",
    )
    promoted = redis_group.client(redis_group.replica_port)
    assert promoted.info("replication")["role"] == "master"
    wait_for(
        lambda: [m.name for m in live_servers(promoted, qs.cluster, key)] == ["server1"],
        timeout=60,
        what="server1 to be live again on the new master",
    )
    again = wait_for(
        lambda: (h := read_holder(promoted, qs.cluster)) and h.epoch > first.epoch and h,
        timeout=60,
        what="server1 to hold the lease again with a newer epoch",
    )
    assert again.server == "server1"
    # A server that starts now finds the new master, and the LB controller (which also reads
    # membership through Sentinel) puts it into HAProxy.
    qs.start("server2")
    wait_for(lambda: lb_up(qs) == {"server1", "server2"}, timeout=60, what="server2 UP in the load balancer")
    assert requests.get(qs.lb_url + "/zato/ping", timeout=10).status_code == 200
    status = zato("cluster", "status", qs.path, "--json", check=False)
    assert "server2" in status.stdout and f"master {MASTER}" in status.stdout


def test_a_server_started_during_a_failover_waits_for_the_new_master(quickstart, redis_group):
    """Sentinel still names the master just killed (it takes its down-after-milliseconds to
    see it down, then promotes the replica): `zato start` waits for the new master, saying
    so, instead of failing with 'Connection refused'.

    The replica is made one Sentinel cannot promote until the server has asked Sentinel twice
    (each ask a connection to it): before, a start slowed past down-after-milliseconds (a
    loaded machine) could find the replica promoted already and say nothing, or name it."""
    kvdb = {"sentinels": f"127.0.0.1:{redis_group.sentinel_port}", "sentinel_master": MASTER}
    qs = quickstart(servers=1, extra_conf={"kvdb": kvdb})
    replica = redis_group.client(redis_group.replica_port)
    sentinel = redis_group.client(redis_group.sentinel_port)
    replica.config_set("replica-priority", 0)  # not promoted while 0
    sentinel.sentinel_set(MASTER, "failover-timeout", 1000)  # tried again 2 s after the aborted one
    asked = sentinel.info("stats")["total_connections_received"]  # this client's included
    redis_group.kill("master")
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(qs.start, "server1")
        wait_for(
            lambda: starting.done() or sentinel.info("stats")["total_connections_received"] >= asked + 3,
            timeout=60,
            what="the starting server to ask Sentinel again (it has said what it waits for)",
        )
        replica.config_set("replica-priority", 100)
        said = starting.result()
    assert "waiting up to 20 s for Sentinel's master to answer" in said
    assert f"master {MASTER} at 127.0.0.1:{redis_group.master_port}" in said
    assert redis_group.master_address()[1] == redis_group.replica_port
    ping = requests.get(qs.server_url("server1") + "/zato/ping", timeout=10)
    assert ping.json()["zato_ping_response"] == {"pong": "zato"}
    promoted = redis_group.client(redis_group.replica_port)
    key = member_key(qs.settings("server1").cluster_secret, qs.cluster)
    wait_for(
        lambda: [m.name for m in live_servers(promoted, qs.cluster, key)] == ["server1"],
        timeout=30,
        what="server1 to be a live member on the promoted replica",
    )


def test_a_start_through_a_sentinel_that_monitors_no_such_master_fails_at_once(quickstart, redis_group):
    """Nothing a wait would change: the Sentinel answers, but has no master of that name."""
    kvdb = {"sentinels": f"127.0.0.1:{redis_group.sentinel_port}", "sentinel_master": "nosuchmaster"}
    qs = quickstart(servers=1, extra_conf={"kvdb": kvdb})
    out = zato("start", qs.member_dir("server1"), check=False)
    said = out.stdout + out.stderr
    assert out.returncode != 0
    assert "No master found for 'nosuchmaster'" in said and "waiting" not in said, said
    # what it can be, Sentinel's words (before: "no Sentinel reachable, or none monitors it",
    # also when the Sentinels saw the master down with too few of them to fail over)
    assert "none monitors [kvdb] sentinel_master, or they see the master down" in said, said
    assert not requests_ok(qs.server_url("server1") + "/zato/ping")


def requests_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_connections_follow_the_master_the_sentinel_names_while_the_old_one_answers(redis_group):
    """What a partition between Redis hosts looks like to a server that still reaches the old
    master: the Sentinel names another one, and the old one still takes writes. Before, a
    connection that stayed up kept writing to the old master (redis-py asks the Sentinels only
    when it opens one), whose writes the Sentinel drops once the partition heals (it makes it
    a replica); now the client's connections move to the one the Sentinel names within about
    a second (zato.coord.client.FollowingPool)."""
    settings = RedisSettings(sentinels=(("127.0.0.1", redis_group.sentinel_port),), sentinel_master=MASTER)
    client = connect(settings)
    client.set("zato:follow:key", "before")  # its connection to the master stays up
    promoted = redis_group.client(redis_group.replica_port)
    promoted.replicaof("NO", "ONE")  # the Sentinel's promotion, without a word to the old master
    sentinel = redis_group.client(redis_group.sentinel_port)
    sentinel.sentinel_remove(MASTER)
    sentinel.sentinel_monitor(MASTER, "127.0.0.1", redis_group.replica_port, 1)

    def written_to_the_new_master() -> bool:
        client.set("zato:follow:key", "after")
        return promoted.get("zato:follow:key") == "after"

    wait_for(
        written_to_the_new_master,
        timeout=10,
        what="a write through the client on the master the Sentinel names",
    )
