"""A fencing epoch is never issued twice, even when Sentinel fails Redis over to a replica that
never got an acknowledged INCR (real master, replica and sentinel; the replica is SIGSTOPped
and its replication link closed while epoch 2 is issued, then the master is SIGKILLed).
Redis alone would hand epoch 2 out again; the durable floor in the ODB makes the next holder's
epoch 3, and the holder of the lost epoch finds its lease gone (one holder afterwards).

The first test drives Lease objects on loopback (exact epochs); the second is the same fault
on the lab, where three servers and the LB follow the master through the lab's Sentinel."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid

import pytest

from tests.hosts.checkers import (
    AmqpPublisher,
    EpochWatch,
    OutgoingSender,
    amqp_counts,
    outgoing_counts,
    stale_accepted,
)
from tests.hosts.redis_host import PORTS
from tests.hosts.test_partition import publish_and_settle
from tests.integration.test_sentinel import MASTER, RedisGroup
from tests.support import cluster_name, wait_for
from zato.common.errors import LeaseLost
from zato.config.settings import LeaseSettings, RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.lease import Lease, read_holder
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


def test_a_lab_failover_that_lost_an_acknowledged_epoch_leaves_one_holder_above_it(lab, channel):
    """The same fault on the lab, with the servers following the master through the Sentinel.
    The holder is paused past the TTL while the replica is cut off, so the standby that takes
    over acts under an epoch only the old master acknowledged. Then the other servers are
    paused too, the master dies, the Sentinel promotes the replica, and the old holder is
    resumed first: the only server running never saw the lost epoch (the others remember the
    highest epoch they saw, which would hide a missing floor), and Redis forgot it. Afterwards
    exactly one server holds the lease and runs connectors, under an epoch strictly higher
    than any issued before; nothing lost, no stale call."""
    group = lab.redis_host
    publish_and_settle(lab, channel, 0, 30)
    old, old_epoch = lab.wait_holder()
    others = [name for name in lab.names if name != old]
    watch = EpochWatch(lab).start()
    paused: list[str] = []

    def pause(*names: str) -> None:
        for name in names:
            lab.pause(name)
            paused.append(name)

    def resume(*names: str) -> None:
        for name in names:
            lab.resume(name)
            paused.remove(name)

    try:
        group.isolate_replica()
        pause(old)
        standby, lost_epoch = lab.wait_holder(other_than=old, timeout=20)
        publish_and_settle(lab, channel, 30, 30)  # the standby acted under the unreplicated epoch
        issued = max([*watch.epochs, EpochFloor(lab.odb_url, lab.cluster).read()])
        pause(*others)
        group.fail_over()
        forgot = lab.epoch()
        resume(old)
        first = lab.wait_holder(timeout=20)  # the only server running: it never saw lost_epoch
        resume(*others)
        for n in range(60, 120):
            channel.publish(n)

        def settled() -> tuple[str, int] | None:
            holder = lab.holder()
            acting = [name for name in lab.names if lab.connectors(name)]
            done = amqp_counts(channel.published, lab.accepted())["lost"] == 0
            return holder if holder and done and acting == [holder[0]] else None

        holder, epoch = wait_for(settled, timeout=60, what="one holder acting after the failover")
    finally:
        resume(*paused)
        watch.stop()
        group.restore()
    accepted = lab.accepted()
    counts = amqp_counts(channel.published, accepted)
    print(
        f"redis failover: {old} ({old_epoch}) -> {standby} ({lost_epoch}, lost by Redis: it "
        f"says {forgot}) -> {first[0]} ({first[1]}), then {holder} ({epoch}); issued before {issued}; "
        f"epochs seen {watch.epochs}; {counts}"
    )
    assert first[0] == old and first[1] > issued  # the epoch Redis forgot was not issued again
    assert any(a["epoch"] == lost_epoch for a in accepted), "the standby acted under the lost epoch"
    assert forgot < lost_epoch  # the promoted replica never got it: INCR alone would issue it again
    assert epoch > issued
    assert [name for name in lab.names if lab.connectors(name)] == [holder]
    assert counts["lost"] == 0
    assert stale_accepted(accepted) == 0


def test_a_master_the_sentinel_lost_while_the_servers_reach_it_loses_no_send(lab):
    """A partition between the Redis hosts: the Sentinel loses the master, which every server
    still reaches, and promotes the replica. Before, every connection that stayed up went on
    writing to the old master (redis-py asks the Sentinels only when it opens one), while the
    next holder's connectors, new processes, read the new one: once the holder's host had
    vanished, no send reached the queue, and when the partition healed the Sentinel made the
    old master a replica and every send it had taken was gone. Now each process follows the
    master the Sentinel names within a second (zato.coord.client.FollowingPool): every send
    that returned once they had moved reaches the queue."""
    group = lab.redis_host
    queue = f"zl-out-{uuid.uuid4().hex[:8]}"
    consumer = AmqpPublisher(queue)  # declares the queue the outgoing connection routes to
    lab.cli("conn create amqp-outgoing", "--name", "out", "--def", "rabbit", "--routing-key", queue)
    lab.cli("channel create", "--name", "lab-send", "--url-path", "/lab/send", "--service", "lab.send")
    sender = OutgoingSender(lab, lab.lb_url + "/lab/send")
    received: list[int] = []

    def arrived() -> dict:
        received.extend(consumer.take_all())
        return outgoing_counts(sender.returned[mark:], received)

    def holder(other_than: str = "") -> tuple[str, int] | None:
        for port in PORTS:  # the old master's or the new one's, whichever the servers use
            found = read_holder(group.client(port), lab.cluster)
            if found and found.server != other_than:
                return found.server, found.epoch
        return None

    mark, gone, old = 0, "", 0
    try:
        sender.start()
        wait_for(lambda: arrived()["returned"] >= 50, timeout=60, what="the first sends")
        old = group.partition_master()
        wait_for(lambda: group.master_port() != old, timeout=30, what="the Sentinel to promote the replica")
        time.sleep(3)  # every process follows it within FOLLOW_EVERY (1 s)
        gone = wait_for(holder, timeout=10, what="a holder")[0]
        lab.net.blackhole(lab.host(gone))  # its connectors stop: the next holder's start
        new = wait_for(lambda: holder(other_than=gone), timeout=20, what="the next holder")[0]
        wait_for(lambda: lab.connectors(new), timeout=15, what="the next holder's connectors")
        mark = len(sender.returned)
        wait_for(lambda: len(sender.returned) >= mark + 100, timeout=30, what="sends after the takeover")
        group.heal_partition()  # the old master becomes a replica: what it took is gone
        lab.net.heal(lab.host(gone))
        time.sleep(2)
    finally:
        sender.stop()
        group.heal_partition()
        if gone:
            lab.net.heal(lab.host(gone))
    try:
        with contextlib.suppress(AssertionError):
            wait_for(
                lambda: arrived()["lost"] == 0, timeout=30, what="every send after the takeover in the queue"
            )
        counts = arrived()
        whole = outgoing_counts(sender.returned, received)
    finally:
        lab.cli("channel delete", "--name", "lab-send")
        lab.cli("conn delete amqp-outgoing", "--name", "out")
        consumer.close()
    print(
        f"master {old} lost by the Sentinel, holder {gone} vanished -> {new}: after the takeover {counts}; "
        f"in all {whole} (a send the old master took before the servers moved is lost with it)"
    )
    assert counts["lost"] == 0, counts
