"""One contract for the lease side of the coordination port, run on both implementations:
`Lease` over the shared Redis and `MemoryLease` over `MemoryCoord` (fake clock). Whatever a
test here says of one holds for the other, so the property tests that run on the in-memory
one (tests/unit/test_lease_protocol.py) speak about the real protocol."""

from __future__ import annotations

import pytest

from tests.support import REDIS_URL, cleanup_redis, cluster_name, wait_for
from zato.common.errors import CoordDataError, CoordUnavailable, LeaseLost
from zato.config.settings import LeaseSettings, RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.lease import Lease, current_epoch
from zato.coord.memory import MemoryCoord, MemoryLease

SETTINGS = LeaseSettings(ttl=0.3, renew_interval=0.1, renew_deadline=0.2, retry_interval=0.3)


class RedisWorld:
    def __init__(self) -> None:
        self.cluster = cluster_name("contract")
        self.client = connect(RedisSettings(url=REDIS_URL))

    def lease(self, server: str) -> Lease:
        return Lease(self.client, self.cluster, server, SETTINGS)

    def expire(self, lease: Lease) -> None:
        wait_for(lambda: lease.remaining_ms() < 0, timeout=5, interval=0.02, what="the lease to expire")

    def lose_data(self) -> None:
        cleanup_redis(self.cluster)

    def close(self) -> None:
        cleanup_redis(self.cluster)
        self.client.close()


class MemoryWorld:
    def __init__(self) -> None:
        self.now = 0.0
        self.coord = MemoryCoord(clock=lambda: self.now)

    def lease(self, server: str) -> MemoryLease:
        return MemoryLease(self.coord, server, SETTINGS)

    def expire(self, lease: MemoryLease) -> None:  # noqa: ARG002 - same signature as RedisWorld
        self.now += SETTINGS.ttl + 0.001

    def lose_data(self) -> None:
        self.coord.lose_data()

    def close(self) -> None:
        pass


@pytest.fixture(params=["redis", "memory"])
def world(request):
    w = RedisWorld() if request.param == "redis" else MemoryWorld()
    yield w
    w.close()


def test_one_holder_at_a_time_and_the_refusal_says_who_is_newest(world):
    a, b = world.lease("a"), world.lease("b")
    assert a.remaining_ms() == -2
    got = a.try_acquire()
    assert got.acquired and got.epoch == 1 and a.epoch == 1
    refused = b.try_acquire()
    assert not refused.acquired and refused.epoch == 1 and 0 < refused.ttl_ms <= 300
    assert b.highest_epoch == 1 and b.token == ""


def test_renew_keeps_it_and_a_lost_lease_cannot_be_renewed(world):
    a, b = world.lease("a"), world.lease("b")
    a.try_acquire()
    a.renew()
    assert b.remaining_ms() > 0
    world.expire(a)
    assert b.try_acquire().epoch == 2
    with pytest.raises(LeaseLost):
        a.renew()
    assert a.token == "" and not a.write_status({"x": 1}, 1.0)
    assert b.write_status({"x": 1}, 1.0)


def test_release_frees_it_at_once_and_epochs_rise(world):
    a, b = world.lease("a"), world.lease("b")
    a.try_acquire()
    assert a.release() and not a.release()
    assert b.remaining_ms() == -2
    assert b.try_acquire().epoch == 2
    assert not a.write_status({"x": 1}, 1.0)


def test_an_acquirer_keeps_epochs_rising_after_the_store_lost_its_data(world):
    a, b = world.lease("a"), world.lease("b")
    a.try_acquire()
    b.remaining_ms()  # b has seen epoch 1
    world.lose_data()
    assert a.remaining_ms() == -2
    assert b.try_acquire().epoch == 2  # not 1 again: b passes the highest epoch it saw


def test_a_forgotten_token_is_not_released(world):
    a, b = world.lease("a"), world.lease("b")
    a.try_acquire()
    a.forget()
    assert not a.release()
    assert not b.try_acquire().acquired  # the key runs out on its own


def test_redis_errors_tell_an_outage_from_a_bug():
    """Only the Redis side has wire errors: WRONGTYPE is a CoordDataError, a refused connection
    CoordUnavailable (both CoordError, so every existing handler still catches them). A lease
    check reads an epoch key of another type as unknown (said once; the next acquisition
    writes it): tests/integration/test_scripts_wrong_type.py."""
    w = RedisWorld()
    try:
        w.client.lpush(Keys(w.cluster).epoch, "not-a-number")
        with pytest.raises(CoordDataError, match="WRONGTYPE"):
            current_epoch(w.client, w.cluster)
        assert w.lease("a").remaining_ms() == -2
        dead = connect(RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.5))
        with pytest.raises(CoordUnavailable):
            Lease(dead, w.cluster, "a", SETTINGS).remaining_ms()
    finally:
        w.close()


def test_a_cut_off_server_sees_the_store_unavailable():
    w = MemoryWorld()
    a = w.lease("a")
    w.coord.partition("a")
    with pytest.raises(CoordUnavailable):
        a.try_acquire()
    w.coord.partition("a", cut=False)
    assert a.try_acquire().acquired
