"""The connector-server lease against the real Redis: one holder, epochs, fencing."""

from __future__ import annotations

import threading

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import wait_for
from zato.common.errors import CoordError, LeaseLost
from zato.config.settings import LeaseSettings, RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.lease import (
    Lease,
    LeaseKeeper,
    RedisHealth,
    current_epoch,
    read_holder,
    read_supervisor_status,
)

SETTINGS = LeaseSettings(ttl=1.5, renew_interval=0.3, renew_deadline=1.0, retry_interval=1.0)


def test_only_one_of_many_acquires_and_the_epoch_goes_up(client, cluster) -> None:
    leases = [Lease(client, cluster, f"server{i}", SETTINGS) for i in range(5)]
    attempts = [lease.try_acquire() for lease in leases]
    assert [a.acquired for a in attempts].count(True) == 1
    winner = leases[[a.acquired for a in attempts].index(True)]
    assert winner.epoch == 1 == current_epoch(client, cluster)
    assert all(a.epoch == 1 and 0 < a.ttl_ms <= 1500 for a in attempts if not a.acquired)
    holder = read_holder(client, cluster)
    assert holder.server == winner.server and holder.epoch == 1
    assert winner.release()
    assert read_holder(client, cluster) is None
    again = leases[0].try_acquire()
    assert again.acquired and again.epoch == 2


def test_renew_extends_only_my_own_lease(client, cluster) -> None:
    a = Lease(client, cluster, "a", SETTINGS)
    b = Lease(client, cluster, "b", SETTINGS)
    assert a.try_acquire().acquired
    a.renew()
    client.delete(Keys(cluster).lease)  # as if it expired while a was paused
    assert b.try_acquire().acquired
    with pytest.raises(LeaseLost):
        a.renew()
    assert read_holder(client, cluster).server == "b"
    assert not a.release()  # cannot delete b's lease either
    assert read_holder(client, cluster).epoch == 2


def test_status_writes_are_fenced_by_the_lease(client, cluster) -> None:
    a = Lease(client, cluster, "a", SETTINGS)
    b = Lease(client, cluster, "b", SETTINGS)
    a.try_acquire()
    assert a.write_status({"server": "a", "epoch": a.epoch}, ttl=5)
    assert read_supervisor_status(client, cluster)["server"] == "a"
    client.delete(Keys(cluster).lease)
    b.try_acquire()
    assert b.write_status({"server": "b", "epoch": b.epoch}, ttl=5)
    assert not a.write_status({"server": "a", "epoch": a.epoch}, ttl=5)
    assert read_supervisor_status(client, cluster)["server"] == "b"


def test_the_epoch_never_goes_back_even_if_redis_loses_it(client, cluster) -> None:
    a = Lease(client, cluster, "a", SETTINGS)
    for _ in range(3):
        assert a.try_acquire().acquired
        a.release()
    assert a.highest_epoch == 3
    client.delete(Keys(cluster).epoch)  # as after a Redis restart without persistence
    assert a.try_acquire().acquired
    assert a.epoch == 4 == current_epoch(client, cluster)


def test_an_epoch_key_put_back_by_the_holder_is_logged(client, cluster, caplog) -> None:
    """Before: put back without a word, so an operator never learnt that something wrote it."""
    a = Lease(client, cluster, "a", SETTINGS)
    assert a.try_acquire().acquired and a.epoch == 1
    a.renew()
    assert not [r for r in caplog.records if r.name == "zato.lease"]
    key = Keys(cluster).epoch
    client.set(key, "garbled")
    a.renew()
    assert client.get(key) == "1"
    client.set(key, "0")  # older than the lease's
    a.renew()
    said = [r.getMessage() for r in caplog.records if r.name == "zato.lease" and r.levelname == "WARNING"]
    assert said == [
        f"the cluster's epoch key in Redis ({key}) was missing or not a number (written by hand, or a "
        "failover to a replica that was behind?); put back to 1",
        f"the cluster's epoch key in Redis ({key}) was older than the lease's (written by hand, or a "
        "failover to a replica that was behind?); put back to 1",
    ]
    assert client.get(key) == "1" and read_holder(client, cluster).server == "a"


def test_release_wakes_a_standby_keeper_which_takes_over(client, cluster) -> None:
    slow = LeaseSettings(ttl=30.0, renew_interval=0.3, renew_deadline=1.0, retry_interval=30.0)
    holder = Lease(client, cluster, "a", slow)
    assert holder.try_acquire().acquired
    stop = threading.Event()
    keeper = LeaseKeeper(Lease(client, cluster, "b", slow), RedisHealth(), stop.is_set, stop.wait)
    thread = threading.Thread(target=keeper.run, daemon=True)
    thread.start()
    try:
        channel = Keys(cluster).lease_channel
        wait_for(lambda: client.pubsub_numsub(channel)[0][1] == 1, what="the standby to subscribe")
        assert keeper.valid_epoch() is None
        holder.release()
        # Without the release message the standby would sleep for 30 s (its retry ceiling).
        assert wait_for(keeper.valid_epoch, timeout=10, what="the standby to take over") == 2
        assert read_holder(client, cluster).server == "b"
    finally:
        stop.set()
        thread.join(5)


def test_redis_errors_become_coord_errors(cluster) -> None:
    nowhere = RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.2)
    dead = connect(nowhere, retry=Retry(NoBackoff(), 0))
    lease = Lease(dead, cluster, "a", SETTINGS)
    with pytest.raises(CoordError, match="acquiring the lease"):
        lease.try_acquire()
    with pytest.raises(CoordError, match="checking the lease"):
        lease.remaining_ms()


def test_a_standby_learns_every_new_epoch_without_polling_for_it(client, cluster) -> None:
    slow = LeaseSettings(ttl=30.0, renew_interval=0.3, renew_deadline=1.0, retry_interval=30.0)
    assert Lease(client, cluster, "a", slow).try_acquire().epoch == 1
    stop = threading.Event()
    mine = Lease(client, cluster, "c", slow)
    keeper = LeaseKeeper(mine, RedisHealth(), stop.is_set, stop.wait)
    thread = threading.Thread(target=keeper.run, daemon=True)
    thread.start()
    try:
        channel = Keys(cluster).lease_channel
        wait_for(lambda: client.pubsub_numsub(channel)[0][1] == 1, what="the standby to subscribe")
        client.delete(Keys(cluster).lease)  # "a" vanished without a release message ...
        assert Lease(client, cluster, "b", slow).try_acquire().epoch == 2  # ... and "b" took over
        wait_for(lambda: mine.highest_epoch == 2, timeout=10, what="the standby to hear epoch 2")
        assert keeper.valid_epoch() is None
    finally:
        stop.set()
        thread.join(5)
