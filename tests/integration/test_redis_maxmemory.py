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

from tests.conn_support import Rabbit, log_text, make_server_dir, start_connector, stop_process
from tests.support import cluster_name, private_redis, wait_for
from zato.common.errors import CoordRefused
from zato.config.settings import RedisSettings, load_server_settings
from zato.coord import handoff
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue
from zato.odb import connectors
from zato.odb.engine import ODB
from zato.service.outgoing import make_outgoing

FILLER = "not-the-cluster:filler"  # a key of the test's own that fills Redis


def fill(admin) -> None:  # noqa: ANN001 - redis.Redis
    """Redis at its maxmemory: writes are refused (OOM) from now on. Filled in smaller and
    smaller pieces, so that what a refused piece's buffer gives back leaves no room."""
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + (2 << 20))
    for size in (50_000, 1000, 10):
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for _ in range(1_000_000):
                admin.rpush(FILLER, b"x" * size)


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


def test_an_outgoing_queue_at_redis_maxmemory_gives_its_waiting_messages_one_by_one():
    """The IBM MQ outgoing connector takes one message at a time (OutQueue.take): before, it
    waited with BLMOVE first, which Redis refuses at its maxmemory (a write), so a full Redis
    kept every waiting message until an operator made room; now a waiting one is taken at once."""
    cluster = cluster_name("evict")
    with private_redis() as (port, admin):
        admin.set(Keys(cluster).epoch, 1)
        client = connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
        try:
            for i in range(3):
                OutQueue(client, cluster, "ibm-mq", "orders").push(f"m{i}")
            fill(admin)
            taker = OutQueue(client, cluster, "ibm-mq", "orders", epoch=1)
            assert [taker.take(1.0) for _ in range(3)] == ["m0", "m1", "m2"]
            taker.done(["m0", "m1", "m2"])
            assert taker.depth() == (0, 0)
        finally:
            client.close()


def test_amqp_outgoing_messages_at_redis_maxmemory_go_out_and_a_send_is_refused_with_a_clear_error(tmp_path):
    """Messages a service queued before Redis filled up go out while it is still full, each
    once: taking them moves them between two lists and removing the sent ones frees memory,
    so a full Redis is emptied by its connectors (before: refused with OOM until an operator made
    room). One sent while it is full is refused to the service with a clear error (its caller
    gets 503), not taken and lost. A real outgoing connector."""
    cluster = cluster_name("evict")
    rabbit = Rabbit()
    with private_redis() as (port, admin):
        url = f"redis://127.0.0.1:{port}/0"
        server_dir = make_server_dir(str(tmp_path), cluster, redis_url=url)
        odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
        client = connect(RedisSettings(url=url))
        proc = None
        try:
            admin.set(Keys(cluster).epoch, 1)
            queue = rabbit.queue(f"zt-evict-{cluster}")
            connectors.create(odb, cluster, "amqp-def", {"name": "rabbit"})
            connectors.create(
                odb, cluster, "amqp-outgoing", {"name": "orders", "def": "rabbit", "routing_key": queue}
            )
            out = make_outgoing(load_server_settings(server_dir), client).amqp
            for i in range(20):
                out.send(f"before-{i}", "orders")
            fill(admin)
            with pytest.raises(CoordRefused, match=r"Redis refuses writes \(OOM: it is at its maxmemory\)"):
                out.send("while-full", "orders")
            proc = start_connector(server_dir, "amqp-outgoing", "orders")
            got: list[bytes] = []
            wait_for(lambda: got.extend(b for _, b in rabbit.get_all(queue)) or len(got) >= 20, 60,
                     what="the 20 messages at the broker, Redis still full")  # fmt: skip
            assert sorted(got) == sorted(f"before-{i}".encode() for i in range(20)), got  # each once
            wait_for(lambda: OutQueue(client, cluster, "amqp", "orders").depth() == (0, 0), 10,
                     what="the sent messages gone from Redis")  # fmt: skip
            with pytest.raises(redis.exceptions.OutOfMemoryError):  # still full: nothing else made room
                admin.rpush(FILLER, b"x" * 100_000)
            assert proc.poll() is None, log_text(server_dir)
        finally:
            if proc is not None:
                stop_process(proc)
            client.close()
            odb.dispose()
            rabbit.close()
