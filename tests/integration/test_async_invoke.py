"""invoke_async's queue on a real Redis: a call a dead worker had taken runs again elsewhere,
a clean stop hands back what it took, and a live worker's calls are left alone."""

from __future__ import annotations

import pytest
import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name
from zato.coord.async_invoke import AsyncTaker, decode, push
from zato.coord.keys import Keys


@pytest.fixture
def env():
    cluster = cluster_name("async")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield cluster, client
    cleanup_redis(cluster)
    client.close()


def test_dead_workers_calls_run_again_and_live_ones_are_left(env) -> None:
    cluster, client = env
    push(client, cluster, "jobs.run", {"n": 1}, "K1")
    push(client, cluster, "jobs.run", {"n": 2}, "K2")
    dead, live, other = (AsyncTaker(client, cluster, w) for w in ("s1:1", "s2:2", "s3:3"))
    for taker in (dead, live, other):
        taker.heartbeat()
    first = decode(dead.take(0.1))
    second = decode(live.take(0.1))
    assert (first.cid, first.payload, second.cid) == ("K1", {"n": 1}, "K2")
    client.delete(Keys(cluster).async_alive("s1:1"))  # s1's worker was killed: its key expires
    assert other.reap() == 1  # only the dead worker's call moves; the live worker keeps its own
    again = other.take(0.1)
    assert decode(again).cid == "K1"
    other.ack(again)
    assert other.take(0.1) is None
    live.close()  # a clean stop hands back the call it took and did not run
    assert decode(other.take(0.1)).cid == "K2"
    assert client.smembers(Keys(cluster).async_workers) == {"s3:3"}


def test_a_payload_json_cannot_hold_is_refused_at_once(env) -> None:
    cluster, client = env
    from zato.common.errors import CoordError

    with pytest.raises(CoordError, match="not JSON-serialisable"):
        push(client, cluster, "jobs.run", {"when": object()}, "K3")
    assert client.llen(Keys(cluster).async_queue) == 0
