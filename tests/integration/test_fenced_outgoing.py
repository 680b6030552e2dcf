"""The outgoing hand-off is fenced in Redis itself: a connector whose epoch is no longer the
newest (an old holder paused past a takeover, then resumed) cannot move a single message out
of the queue, while the new holder's connector takes them all (real Redis)."""

from __future__ import annotations

import pytest
import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue, StaleEpoch


def test_an_older_epoch_moves_nothing_the_newest_takes_everything():
    cluster = cluster_name("fence")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.set(Keys(cluster).epoch, 7)
        worker = OutQueue(client, cluster, "amqp", "out")
        old = OutQueue(client, cluster, "amqp", "out", epoch=7)
        for i in range(5):
            worker.push(f"m{i}")
        assert old.take(0.1) == "m0"  # epoch 7 is the newest: it may take
        client.set(Keys(cluster).epoch, 8)  # a takeover while the old holder was paused
        with pytest.raises(StaleEpoch):
            old.take(0.1)
        with pytest.raises(StaleEpoch):
            old.take_many(10)
        assert worker.depth() == (4, 1)  # nothing moved by the stale connector
        new = OutQueue(client, cluster, "amqp", "out", epoch=8)
        assert new.leftovers() == ["m0"]  # what the old one took is published again by the new
        assert new.take(0.1) == "m1" and new.take_many(10) == ["m2", "m3", "m4"]
        assert new.take(0.05) is None  # an empty queue: the blocking wait times out
    finally:
        cleanup_redis(cluster)
        client.close()
