"""A Redis with maxmemory-policy noeviction (the one docs/redis-acl.md requires) at its maxmemory
refuses writes (OOM) instead of dropping keys. What a stopping ZeroMQ channel hands over has
no other copy (ZeroMQ has no acknowledgements): before, Redis refused the hand-over there and
the connector dropped what it could not process within DRAIN ("N messages received but not
processed were dropped"); now the hand-over is taken at maxmemory too and the channel's next
connector runs every message. A service's outgoing message is refused with a clear error
meanwhile (its caller knows it did not go). A redis-server of the test's own, full for real."""

from __future__ import annotations

import pytest
import redis

from tests.support import cluster_name, private_redis
from zato.common.errors import CoordRefused
from zato.config.settings import RedisSettings
from zato.coord import handoff
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue

FILLER = "not-the-cluster:filler"  # a key of the test's own that fills Redis


def fill(admin) -> None:  # noqa: ANN001 - redis.Redis
    """Redis at its maxmemory: writes are refused (OOM) from now on."""
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + (2 << 20))
    chunk = b"x" * 50_000
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for _ in range(1000):
            admin.rpush(FILLER, chunk)


def test_a_zeromq_hand_over_at_redis_maxmemory_is_kept_for_the_next_connector():
    cluster = cluster_name("evict")
    with private_redis() as (port, admin):
        admin.set(Keys(cluster).epoch, 1)  # the lease's epoch, as a holder left it
        settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0")
        client = connect(settings, encoding=handoff.ENCODING)
        try:
            fill(admin)
            with pytest.raises(CoordRefused, match=r"Redis refuses writes \(OOM: it is at its maxmemory\)"):
                OutQueue(client, cluster, "amqp", "out1").push('{"id": "1"}')  # a service's send: said
            stopping = handoff.Handoff(client, cluster, "zmq", "orders")
            bodies = [f"order-{i}".encode() for i in range(200)]
            assert stopping.hand_over([handoff.as_raw(b) for b in bodies]) is True
            admin.delete(FILLER)  # memory again: the next connector takes them (fenced, epoch 1)
            following = handoff.Handoff(client, cluster, "zmq", "orders", epoch=1)
            taken = following.take_many(1000)
            assert [handoff.as_body(raw) for raw in taken] == bodies  # all, oldest first
        finally:
            client.close()
