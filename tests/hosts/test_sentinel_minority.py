"""Three Redis hosts, a Sentinel on each (quorum 2), as docs/multi-host.md lays them out, and a
partition between the Redis hosts that leaves the master with one Sentinel (the first one of
[kvdb] sentinels) while the cluster's hosts still reach all three: the other two promote the
replica, the master's own Sentinel still names it. Before, every process asked the first
Sentinel that answered and kept writing to the old master for as long as the partition lasted;
when it healed the Sentinels made the old master a replica and dropped all it had taken (on
a whole cluster: the lease, membership, queued outgoing messages). Now each process follows
the Sentinel with the newest view (zato.coord.client.newest_first)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import redis

from tests.support import wait_for
from zato.config.settings import RedisSettings
from zato.coord.client import connect

NAME = "minority"


def test_writes_follow_the_sentinels_majority_not_the_first_sentinel(lab):
    a, b, c = (lab.net.add_host(name, last) for name, last in (("sa", 40), ("sb", 41), ("sc", 42)))

    def direct(host, port=6379) -> redis.Redis:
        return redis.Redis(host.ip, port, decode_responses=True, socket_timeout=2)

    for host, extra in ((a, ()), (b, ("--replicaof", a.ip, "6379"))):
        argv = ["redis-server", "--bind", host.ip, "--save", "", "--protected-mode", "no", "--dir", lab.root]
        argv += ["--dbfilename", f"dump-{host.name}.rdb", *extra]
        lab._spawn(host.argv(*argv), stdout=subprocess.DEVNULL)
        wait_for(lambda h=host: direct(h).ping(), timeout=10, what=f"redis-server on {host.name}")
    for host in (a, b, c):
        conf = os.path.join(lab.root, f"sentinel-{host.name}.conf")
        with open(conf, "w") as f:
            f.write(
                f"bind {host.ip}\nport 26379\ndir {lab.root}\nsentinel monitor {NAME} {a.ip} 6379 2\n"
                f"sentinel down-after-milliseconds {NAME} 1000\nsentinel failover-timeout {NAME} 3000\n"
            )
        lab._spawn(host.argv("redis-server", conf, "--sentinel"), stdout=subprocess.DEVNULL)

    def group_known() -> bool:
        views = [direct(h, 26379).sentinel_master(NAME) for h in (a, b, c)]
        return all(v["num-other-sentinels"] == 2 and v["num-slaves"] == 1 for v in views)

    wait_for(group_known, timeout=30, what="each Sentinel to know the others and the replica")
    client = connect(RedisSettings(sentinels=tuple((h.ip, 26379) for h in (a, b, c)), sentinel_master=NAME))
    client.set("written", "before")
    try:
        lab.net.partition(a, b)
        lab.net.partition(a, c)  # the lab's root namespace, where the client is, reaches all three
        wait_for(
            lambda: direct(b, 26379).sentinel_get_master_addr_by_name(NAME)[0] == b.ip,
            timeout=30,
            what="the majority of Sentinels to promote the replica",
        )
        assert direct(a, 26379).sentinel_get_master_addr_by_name(NAME)[0] == a.ip  # the minority's view
        writes = 0

        def reaches_the_promoted_master() -> bool:
            nonlocal writes
            writes += 1
            client.set("written", f"after-{writes}")
            return direct(b).get("written") == f"after-{writes}"

        try:
            wait_for(reaches_the_promoted_master, timeout=10, what="a write to reach the promoted master")
        finally:
            print(f"{writes} writes after the promotion, {direct(a).get('written')!r} on the old master")
        lab.net.heal(a)
        wait_for(lambda: direct(a).role()[0] == "slave", timeout=30, what="the old master a replica")
        assert client.get("written") == f"after-{writes}"  # what was written since survived the heal
    finally:
        lab.net.heal(a)
        client.close()
        for host in (a, b, c):
            for pid in lab.net.pids(host):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
