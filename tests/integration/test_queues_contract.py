"""One contract for the outgoing-queue side of the coordination port, run on both
implementations: `OutQueue` over the shared Redis (with its fenced Lua move) and
`MemoryOutQueue` over `MemoryCluster`. What a user relies on: messages go out in the order
services sent them, nothing taken is lost when a connector dies before its broker confirmed
(the next run gets it back), and an old lease holder's connector cannot move a single message
once another server holds a newer epoch."""

from __future__ import annotations

import threading

import pytest

from tests.integration.cluster_worlds import RedisClusterWorld, open_world
from zato.common.errors import CoordDataError, CoordUnavailable
from zato.coord.keys import Keys
from zato.coord.queues import StaleEpoch


@pytest.fixture(params=["redis", "memory"])
def world(request):
    yield from open_world(request.param)


def holder(world, server: str = "a"):
    """The connector side of a server that just took the lease: its queue epoch."""
    got = world.lease(server).try_acquire()
    assert got.acquired
    return got.epoch


def pushed(world, n: int) -> tuple:
    """A worker's queue with m0..m{n-1} pushed, and the epoch of a holder ("a")."""
    worker, epoch = world.queue("out"), holder(world)
    for i in range(n):
        worker.push(f"m{i}")
    return worker, epoch


def test_messages_go_out_in_the_order_they_were_sent(world):
    worker, epoch = world.queue("out"), holder(world)
    connector = world.queue("out", epoch)
    for i in range(5):
        worker.push(f"m{i}")
    assert worker.depth() == (5, 0)
    assert connector.take(1.0) == "m0"
    assert connector.take_many(3) == ["m1", "m2", "m3"]
    assert connector.leftovers() == ["m0", "m1", "m2", "m3"]
    assert connector.depth() == (1, 4)
    connector.done(["m0", "m1", "m2", "m3"])
    assert connector.take_many(10) == ["m4"] and connector.take_many(10) == []
    connector.done(["m4"])
    assert connector.depth() == (0, 0) and connector.leftovers() == []


def test_confirmed_messages_leave_and_the_next_ones_come_in_one_call(world):
    worker, epoch = pushed(world, 6)
    connector = world.queue("out", epoch)
    assert connector.take_many(3) == ["m0", "m1", "m2"]
    assert connector.settle_and_take(["m0", "m2"], 2) == ["m3", "m4"]  # m1 not confirmed yet
    assert connector.leftovers() == ["m1", "m3", "m4"]
    assert connector.settle_and_take([], 5) == ["m5"]
    assert connector.settle_and_take(["m1", "m3", "m4", "m5"], 5) == []
    assert connector.depth() == (0, 0)
    worker.push("m6")
    assert connector.take_many(1) == ["m6"]
    world.expire(world.lease("a"))  # paused past its TTL while the broker confirmed m6
    holder(world, "b")
    worker.push("m7")
    with pytest.raises(StaleEpoch):  # a newer epoch: nothing moves in...
        connector.settle_and_take(["m6"], 5)
    assert worker.depth() == (1, 0)  # ...and what the broker confirmed left all the same


def test_an_empty_queue_waits_then_gives_nothing_and_a_push_wakes_a_waiting_take(world):
    connector = world.queue("out", holder(world))
    assert connector.take(0.05) is None
    got: list = []
    waiting = threading.Thread(target=lambda: got.append(connector.take(10)))
    waiting.start()
    world.queue("out").push("m0")
    waiting.join(15)
    assert got == ["m0"]


def test_what_was_taken_and_not_confirmed_comes_back_to_the_next_run(world):
    _, epoch = pushed(world, 4)
    first_run = world.queue("out", epoch)
    assert first_run.take_many(3) == ["m0", "m1", "m2"]
    first_run.done(["m1"])  # the broker confirmed only m1, then the connector died
    next_run = world.queue("out", epoch)
    assert next_run.leftovers() == ["m0", "m2"]  # oldest first, published again
    next_run.done(next_run.leftovers())
    assert next_run.take_many(10) == ["m3"]


def test_an_older_epoch_moves_nothing_after_a_takeover(world):
    worker, old_epoch = world.queue("out"), holder(world, "a")
    old = world.queue("out", old_epoch)
    for i in range(4):
        worker.push(f"m{i}")
    assert old.take(1.0) == "m0"
    world.expire(world.lease("a"))  # a was paused past its TTL
    new_epoch = holder(world, "b")
    assert new_epoch > old_epoch
    with pytest.raises(StaleEpoch):
        old.take(1.0)
    with pytest.raises(StaleEpoch):
        old.take_many(10)
    assert worker.depth() == (3, 1)  # nothing moved by the stale connector
    new = world.queue("out", new_epoch)
    assert new.leftovers() == ["m0"]  # the old one's unconfirmed message goes out again
    assert new.take_many(10) == ["m1", "m2", "m3"]


def test_a_take_bounded_by_size_stops_at_the_message_that_reaches_it(world):
    """Large messages are taken a few at a time (the connector's memory), and one larger than
    the bound still moves: it would otherwise wait forever."""
    worker, connector = world.queue("out"), world.queue("out", holder(world))
    for raw in ("a" * 10, "b" * 10, "c" * 10, "d" * 50, "e", "f"):
        worker.push(raw)
    assert connector.take_many(10, max_bytes=15) == ["a" * 10, "b" * 10]  # 20 bytes reach 15
    assert connector.settle_and_take(["a" * 10], 10, max_bytes=5) == ["c" * 10]
    assert connector.take_many(10, max_bytes=20) == ["d" * 50]  # alone over the bound: it moves
    assert connector.take_many(10, max_bytes=0) == ["e", "f"]  # 0: only the count bounds it
    assert connector.leftovers() == ["b" * 10, "c" * 10, "d" * 50, "e", "f"]


def test_a_duplicate_body_is_confirmed_one_copy_at_a_time(world):
    worker, connector = world.queue("out"), world.queue("out", holder(world))
    worker.push("same")
    worker.push("same")
    assert connector.take_many(2) == ["same", "same"]
    connector.done(["same"])
    assert connector.leftovers() == ["same"]


def test_a_parked_message_waits_for_a_human_then_goes_behind_the_waiting_ones(world):
    worker, connector = world.queue("out"), world.queue("out", holder(world))
    for raw in ("bad", "m1", "m2"):
        worker.push(raw)
    assert connector.take(1.0) == "bad"
    connector.park("bad")
    assert connector.parked_count() == 1 and connector.leftovers() == []
    assert connector.take_many(10) == ["m1", "m2"]
    worker.push("m3")
    assert worker.resend_parked() == 1 and worker.parked_count() == 0
    assert connector.take_many(10) == ["m3", "bad"]


def test_queues_of_two_connections_are_apart(world):
    epoch = holder(world)
    world.queue("one").push("for one")
    assert world.queue("two", epoch).take(0.05) is None
    assert world.queue("one", epoch).take_many(5) == ["for one"]


def test_a_connector_that_cannot_reach_the_store_gets_coord_unavailable(world):
    cut = world.queue("out", 1, cut_off=True)
    with pytest.raises(CoordUnavailable):
        cut.push("m0")
    with pytest.raises(CoordUnavailable):
        cut.take_many(1)
    with pytest.raises(CoordUnavailable):
        cut.leftovers()


def test_redis_holding_the_wrong_type_is_a_data_error_not_an_outage():
    """WRONGTYPE (or an epoch that is not a number, failing the fenced script) is a bug to
    fix, not "Redis unreachable": the connector must not wait for Redis to come back."""
    world = RedisClusterWorld()
    try:
        keys = Keys(world.cluster)
        world.client.set(keys.out_queue("amqp", "out"), "not a list")
        queue = world.queue("out", 1)
        with pytest.raises(CoordDataError, match="WRONGTYPE"):
            queue.push("m0")
        with pytest.raises(CoordDataError, match="WRONGTYPE"):
            queue.take(0.05)
        with pytest.raises(CoordDataError, match="WRONGTYPE"):
            queue.depth()
        world.client.delete(keys.out_queue("amqp", "out"))
        world.client.lpush(keys.epoch, "1")
        queue.push("m0")
        with pytest.raises(CoordDataError):
            queue.take_many(1)
    finally:
        world.close()


@pytest.mark.parametrize("garbled", ["1e300", "0x10", "soon"])
def test_an_epoch_that_is_not_a_whole_number_moves_nothing_and_is_named(garbled):
    """An epoch key another Redis client wrote: before, '1e300' read as a newer epoch (the
    connector took itself for stale and stopped) and text failed on a Lua comparison. Now
    unknown: nothing moved, an error naming the key; the confirmed ones still leave."""
    world = RedisClusterWorld()
    try:
        keys = Keys(world.cluster)
        worker, epoch = world.queue("out"), holder(world)
        for i in range(3):
            worker.push(f"m{i}")
        queue = world.queue("out", epoch)
        assert queue.take_many(1) == ["m0"]
        world.client.set(keys.epoch, garbled)
        with pytest.raises(
            CoordDataError, match=rf"lease epoch in Redis \({keys.epoch}\) is not a whole number"
        ):
            queue.settle_and_take(["m0"], 2)
        assert queue.depth() == (2, 0)  # m0 confirmed and gone, m1 and m2 still waiting
        world.client.set(keys.epoch, str(epoch))  # the holder puts it back
        assert queue.take_many(2) == ["m1", "m2"]
    finally:
        world.close()
