"""One contract for the config-events side of the coordination port, run on both
implementations: `RedisConfigEvents` over the shared Redis pub/sub and `MemoryConfigEvents`
over `MemoryCluster`. What workers and supervisors rely on: an event published while they
listen is heard once and in order, what came before they subscribed is not (they reconcile
from the ODB in on_subscribed instead), a malformed event is skipped without ending the
listener, and an unreachable store is CoordUnavailable, never a silent loss."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.integration.cluster_worlds import open_world
from tests.support import wait_for
from zato.common.errors import CoordError, CoordUnavailable
from zato.common.retry import Backoff
from zato.coord.port import ConfigEvents


@pytest.fixture(params=["redis", "memory"])
def world(request):
    yield from open_world(request.param)


class Listener:
    """listen_forever in a thread, as a worker or a supervisor runs it; records what it hears."""

    def __init__(self, events: ConfigEvents, on_event=None) -> None:
        self.heard: list[dict] = []
        self.errors: list[CoordError] = []
        self.subscriptions = 0
        self.stop = threading.Event()
        self.subscribed = threading.Event()
        self.on_event = on_event or self.heard.append
        self.thread = threading.Thread(target=self._run, args=(events,), daemon=True)
        self.thread.start()

    def _run(self, events: ConfigEvents) -> None:
        events.listen_forever(
            self.on_event, self.stop.is_set, self._subscribed, on_error=self._failed,
            sleep=self.stop.wait, backoff=Backoff(0.01, 0.01), poll=0.02,
        )  # fmt: skip

    def _subscribed(self) -> None:
        self.subscriptions += 1
        self.subscribed.set()

    def _failed(self, e: CoordError) -> None:
        self.errors.append(e)
        self.stop.set()

    def wait_subscribed(self) -> Listener:
        assert self.subscribed.wait(10), "not subscribed within 10 s"
        return self

    def wait_heard(self, n: int) -> list[dict]:
        wait_for(lambda: len(self.heard) >= n, timeout=10, what=f"{n} events heard")
        return self.heard

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "listen_forever did not end after should_stop()"


def deploy(version: int) -> dict:
    return {"kind": "deploy", "module": "crm", "version": version}


LAST = {"kind": "channel", "name": "last"}  # published last: once heard, all before it were too


def test_events_published_while_subscribed_are_heard_once_in_order(world):
    events = world.events()
    listener = Listener(events).wait_subscribed()
    try:
        for v in range(1, 6):
            assert events.publish(deploy(v)) == 1
        events.publish(LAST)
        heard = listener.wait_heard(6)
    finally:
        listener.close()
    assert heard == [deploy(1), deploy(2), deploy(3), deploy(4), deploy(5), LAST]
    assert listener.subscriptions == 1


def test_an_event_published_before_subscribing_is_not_heard(world):
    events = world.events()
    assert events.publish(deploy(1)) == 0  # nobody listens: nobody got it
    listener = Listener(events).wait_subscribed()
    try:
        events.publish(LAST)
        heard = listener.wait_heard(1)
    finally:
        listener.close()
    assert heard == [LAST]


def test_a_stopped_listener_hears_nothing_more(world):
    events = world.events()
    listener = Listener(events).wait_subscribed()
    listener.close()
    assert events.publish(deploy(1)) == 0
    assert listener.heard == []


def test_publish_says_how_many_listeners_got_the_event(world):
    events = world.events()
    first = Listener(events).wait_subscribed()
    second = Listener(world.events()).wait_subscribed()
    try:
        assert events.publish(deploy(1)) == 2
        assert first.wait_heard(1) == [deploy(1)]
        assert second.wait_heard(1) == [deploy(1)]
    finally:
        first.close()
        second.close()
    assert events.publish(deploy(2)) == 0


def test_a_malformed_event_is_skipped_with_a_warning_and_the_next_one_is_heard(world, caplog):
    events = world.events()
    listener = Listener(events).wait_subscribed()
    try:
        with caplog.at_level(logging.WARNING, logger="zato.coord.events"):
            world.publish_raw_event("{not json")
            world.publish_raw_event('{"module": "crm"}')  # no kind
            world.publish_raw_event("[1, 2]")
            events.publish(LAST)
            heard = listener.wait_heard(1)
    finally:
        listener.close()
    assert heard == [LAST]
    assert listener.subscriptions == 1  # skipped, not a failure that subscribes again
    warnings = [r.getMessage() for r in caplog.records if r.name == "zato.coord.events"]
    assert len(warnings) == 3
    assert "malformed config event: '{not json'" in warnings[0]
    assert "without a kind" in warnings[1]
    assert "without a kind" in warnings[2]


def test_an_event_without_a_kind_is_refused_before_anything_is_sent(world):
    events = world.events()
    listener = Listener(events).wait_subscribed()
    try:
        with pytest.raises(ValueError, match="kind"):
            events.publish({"name": "crm"})
        events.publish(LAST)
        heard = listener.wait_heard(1)
    finally:
        listener.close()
    assert heard == [LAST]
    with pytest.raises(ValueError, match="kind"):  # refused before the store is even tried
        world.events(cut_off=True).publish({"name": "crm"})


def test_a_handler_that_fails_does_not_end_the_listener(world):
    events = world.events()
    heard: list[dict] = []

    def on_event(event: dict) -> None:
        if event.get("version") == 1:
            raise RuntimeError("a bug in a handler")
        heard.append(event)

    listener = Listener(events, on_event).wait_subscribed()
    try:
        events.publish(deploy(1))
        wait_for(lambda: listener.subscriptions == 2, timeout=10, what="subscribed again")
        events.publish(LAST)
        wait_for(lambda: heard == [LAST], timeout=10, what="the event after the failure")
    finally:
        listener.close()
    assert listener.errors == []  # a handler's bug is not the store's failure


def test_an_unreachable_store_is_coord_unavailable(world):
    events = world.events(cut_off=True)
    with pytest.raises(CoordUnavailable):
        events.publish(deploy(1))
    listener = Listener(events)
    listener.thread.join(10)
    listener.close()
    assert [type(e) for e in listener.errors] == [CoordUnavailable]
    assert listener.subscriptions == 0
    assert listener.heard == []
