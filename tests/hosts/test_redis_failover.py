"""A fencing epoch is never issued twice, even when Sentinel fails Redis over to a replica that
never got an acknowledged INCR (real master, replica and sentinel; the replica is SIGSTOPped
and its replication link closed while epoch 2 is issued, then the master is SIGKILLed).
Redis alone would hand epoch 2 out again; the durable floor in the ODB makes the next holder's
epoch 3, and the holder of the lost
epoch finds its lease gone (one holder afterwards)."""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.test_sentinel import MASTER, RedisGroup
from tests.support import cluster_name, wait_for
from zato.common.errors import LeaseLost
from zato.config.settings import LeaseSettings, RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.lease import Lease
from zato.lifecycle.layout import create_odb
from zato.odb.epoch import EpochFloor

SETTINGS = LeaseSettings(ttl=5.0, renew_interval=0.5, renew_deadline=1.0, retry_interval=1.0)


@pytest.fixture
def group(tmp_path):
    made = RedisGroup(tmp_path)
    try:
        made.start()
        yield made
    finally:
        for proc in made.procs.values():  # a stopped process cannot die of SIGTERM
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        made.stop()


def test_an_epoch_acknowledged_then_lost_in_a_failover_is_never_issued_again(tmp_path, group):
    cluster = cluster_name("fo")
    odb_url = f"sqlite:///{tmp_path}/odb.db"
    create_odb(odb_url, cluster)
    sentinel = RedisSettings(sentinels=(("127.0.0.1", group.sentinel_port),), sentinel_master=MASTER)

    def lease(name: str) -> Lease:
        return Lease(connect(sentinel), cluster, name, SETTINGS, floor=EpochFloor(odb_url, cluster))

    a, b, c = lease("a"), lease("b"), lease("c")
    master = group.client(group.master_port)
    assert a.try_acquire().epoch == 1
    a.release()
    assert master.wait(1, 2000) == 1  # epoch 1 and the release reached the replica
    os.kill(group.procs["replica"].pid, signal.SIGSTOP)
    master.client_kill_filter(_type="replica")  # its link closed while it cannot reconnect
    second = b.try_acquire()
    assert second.acquired and second.epoch == 2  # acknowledged by the master only
    group.kill("master")
    os.kill(group.procs["replica"].pid, signal.SIGCONT)
    wait_for(lambda: group.master_address()[1] == group.replica_port, timeout=30, what="the failover")
    promoted = group.client(group.replica_port)
    assert int(promoted.get(Keys(cluster).epoch)) == 1  # Redis forgot epoch 2: INCR would issue it again
    third = wait_for(lambda: (t := c.try_acquire()).acquired and t, timeout=15, what="a new holder")
    with pytest.raises(LeaseLost):
        b.renew()  # the holder of the lost epoch is no holder any more
    print(f"epochs: a 1, b 2 (lost by Redis), c {third.epoch}")
    assert third.epoch == 3
    assert EpochFloor(odb_url, cluster).claim(3) is False  # claimed once, never again
