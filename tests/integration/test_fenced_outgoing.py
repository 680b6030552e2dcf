"""The outgoing hand-off is fenced in Redis itself: a connector whose epoch is no longer the
newest (an old holder paused past a takeover, then resumed) cannot move a single message out
of the queue, while the new holder's connector takes them all (real Redis). A channel's
hand-off between its connectors is taken the same way."""

from __future__ import annotations

import pytest
import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name
from zato.config.settings import RedisSettings
from zato.coord import handoff
from zato.coord.client import connect
from zato.coord.handoff import Handoff
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


def test_a_channel_hand_off_is_fenced_taken_at_least_once_and_goes_with_its_channel():
    """The ZeroMQ channels' hand-off on the outgoing lists' code: a take moves the message to
    a processing list (fenced), where it stays until done, so a connector killed before its
    service answered leaves it to the next one; any byte survives the trip; a deleted channel's
    lists go, and a connector still stopping then hands nothing over."""
    cluster = cluster_name("handoff")
    client = connect(RedisSettings(url=REDIS_URL), encoding=handoff.ENCODING)
    try:
        client.set(Keys(cluster).epoch, 7)
        stopping = Handoff(client, cluster, "zmq-channel", "in", epoch=7)
        bodies = [b"\xff\x00binary", b'{"n": 1}', "z\u00e9ro".encode()]
        assert stopping.hand_over([handoff.as_raw(b) for b in bodies])
        nxt = Handoff(client, cluster, "zmq-channel", "in", epoch=7)
        (first,) = nxt.take_many(1)
        assert handoff.as_body(first) == bodies[0]
        assert nxt.depth() == (2, 1)  # SIGKILLed here: the next connector finds it
        assert Handoff(client, cluster, "zmq-channel", "in", epoch=7).leftovers() == [first]
        client.set(Keys(cluster).epoch, 8)  # a takeover
        with pytest.raises(StaleEpoch):
            nxt.take_many(1)
        assert nxt.give_back([first])  # stopped before its service answered: taken first
        new = Handoff(client, cluster, "zmq-channel", "in", epoch=8)
        got = [handoff.as_body(raw) for raw in new.take_many(3)]
        assert got == bodies and new.depth() == (0, 3)
        new.done([handoff.as_raw(bodies[0])])  # its service answered
        assert new.depth() == (0, 2)
        assert Handoff(client, cluster, "zmq-channel", "in").drop() == 2  # the channel deleted
        assert new.depth() == (0, 0)
        assert not stopping.hand_over([handoff.as_raw(b"late")])  # its connector, still stopping
        assert not new.give_back([handoff.as_raw(bodies[1])])
        assert new.depth() == (0, 0)
        Handoff(client, cluster, "zmq-channel", "in").reopen()  # made again under that name
        assert stopping.hand_over([handoff.as_raw(b"new")]) and new.depth() == (1, 0)
    finally:
        cleanup_redis(cluster)
        client.close()
