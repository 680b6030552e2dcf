"""A ZeroMQ channel connector's alive key and its verdict on the hand-off's processing list
(zato.connector.zmq_alive), driven by a fake clock and an in-memory stand-in for the hand-off's
beat (the Redis script is exercised in tests/integration/test_zmq*.py)."""

from __future__ import annotations

from zato.common.errors import CoordUnavailable
from zato.connector.zmq_alive import Alive
from zato.coord.handoff import Others


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lists:
    """What beat_counts() answers; counts the beats (each refreshes the alive key)."""

    def __init__(self) -> None:
        self.others = Others(0, 0)
        self.beats = 0
        self.down = False

    def beat_counts(self) -> Others:
        if self.down:
            raise CoordUnavailable("Redis away")
        self.beats += 1
        return self.others


def _alive(clock: Clock, lists: Lists) -> Alive:
    alive = Alive(lists, "zmq-channel 'c'", stuck_after=120, stop_bound=40, older_wait=50, clock=clock)  # type: ignore[arg-type]
    alive._beat()  # as start() does, without the thread
    return alive


def test_a_busy_main_loop_stays_alive_and_a_stuck_one_stops_saying_so():
    clock, lists = Clock(), Lists()
    alive = _alive(clock, lists)
    clock.now += 60  # the loop has not come round for a minute: alive all the same
    alive._beat()
    assert lists.beats == 2
    clock.now += 61  # past stuck_after without progress: hung, no longer alive in Redis
    alive._beat()
    assert lists.beats == 2 and not alive.alone()
    alive.progress()  # it came round again
    alive._beat()
    assert lists.beats == 3


def test_a_stop_is_alive_within_its_own_bound_however_busy():
    clock, lists = Clock(), Lists()
    alive = _alive(clock, lists)
    alive.stopping()
    clock.now += 39
    alive.progress()  # no effect once stopping: the stop's bound counts
    alive._beat()
    assert lists.beats == 2
    clock.now += 2
    alive._beat()
    assert lists.beats == 2


def test_an_older_epochs_connector_is_waited_for_within_a_bound_a_newer_one_as_long_as_it_lives():
    clock, lists = Clock(), Lists()
    alive = _alive(clock, lists)
    assert alive.alone()
    lists.others = Others(newer=0, older=1)
    alive._beat()
    assert not alive.alone()
    clock.now += 49
    assert not alive.alone()
    clock.now += 1
    assert alive.alone()  # older_wait over: it can have no call a server accepted still running
    lists.others = Others(newer=1, older=0)
    alive._beat()
    clock.now += 1000
    assert not alive.alone()


def test_unregistered_while_redis_is_away_it_waits_and_registers_at_the_next_beat():
    clock, lists = Clock(), Lists()
    lists.down = True
    alive = _alive(clock, lists)
    assert alive.others is None and not alive.alone()
    lists.down = False
    alive._beat()
    assert alive.others == Others(0, 0) and alive.alone()
