"""A stopping server waits for the load balancers to report it drained (lb_view), bounded by
[main] drain_seconds: no sockets, a fake clock."""

from __future__ import annotations

from zato.coord.lb_view import Views
from zato.server.arbiter import wait_drained


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scripted(*steps: dict | Views | None):
    """views() answering each step in turn, then the last one for ever; a dict is the live views."""
    answers = [Views(s) if isinstance(s, dict) else s for s in steps]

    def views() -> Views | None:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return views


def test_goes_on_as_soon_as_every_lb_stopped_sending():
    clock = Clock()
    views = scripted(
        {"lb1": {"s1", "s2"}, "lb2": {"s1"}}, {"lb1": {"s2"}, "lb2": {"s1"}}, {"lb1": {"s2"}, "lb2": set()}
    )
    assert wait_drained("s1", 10.0, views, clock, clock.sleep) == "drained by 2 load balancer(s)"
    assert clock.now - 100.0 < 1.0  # two short polls, not the bound


def test_an_lb_that_never_drains_is_named_when_the_bound_is_reached():
    clock = Clock()
    said = wait_drained("s1", 2.0, scripted({"lb1": {"s1"}, "lb2": set()}), clock, clock.sleep)
    assert said == "drain bound of 2.0 s reached; still served by lb1"
    assert clock.now == 102.0


def test_a_stale_view_is_ignored_and_said_once_and_the_live_lb_ends_the_drain():
    """An LB killed without withdrawing its view: once its liveness expired its view is
    ignored (before, it kept the server waiting its whole bound), and the log names it."""
    clock, said = Clock(), []
    views = scripted(
        {"lb1": {"s1"}, "dead": {"s1"}},
        Views({"lb1": set()}, ("dead",)),
    )
    end = wait_drained("s1", 60.0, views, clock, clock.sleep, said.append)
    assert end == "drained by 1 load balancer(s); ignored the stale view of dead"
    assert said == [
        "drain of server s1: ignoring the view of load balancer dead: not refreshed for over 10 s"
        " (its controller stopped without withdrawing it: killed, or its host lost?)"
    ]


def test_only_stale_views_wait_the_bound_and_say_why():
    clock, said = Clock(), []
    end = wait_drained("s1", 2.0, scripted(Views({}, ("dead",))), clock, clock.sleep, said.append)
    assert end == "no load balancer reports; waited the drain bound of 2.0 s; ignored the stale view of dead"
    assert len(said) == 1 and "ignoring the view of load balancer dead" in said[0]


def test_a_live_lb_slow_to_drain_is_named_while_waiting():
    clock, said = Clock(), []
    end = wait_drained("s1", 5.0, scripted({"lb1": {"s1"}}), clock, clock.sleep, said.append)
    assert end == "drain bound of 5.0 s reached; still served by lb1"
    assert said == [
        "drain of server s1: load balancer(s) lb1 still send new requests here after 1.0 s;"
        " waiting for them up to 4.0 s more"
    ]


def test_no_lb_report_or_unreadable_redis_waits_the_whole_bound():
    for views in (scripted({}), scripted(None)):
        clock = Clock()
        said = wait_drained("s1", 1.5, views, clock, clock.sleep)
        assert said == "no load balancer reports; waited the drain bound of 1.5 s"
        assert clock.now == 101.5


def test_a_drain_that_fails_still_stops_the_server(caplog):
    """Whatever fails in the drain thread (here the supervisor's stop), gunicorn is still told to
    stop: before, the thread died with the exception and the server never stopped."""
    import threading
    import types

    from zato.server.arbiter import ServerHooks

    class BrokenSidecar:
        def stop(self, timeout: float) -> None:
            raise OSError("no such process")

    hooks = object.__new__(ServerHooks)
    hooks.zato = types.SimpleNamespace(name="s1", drain_seconds=5.0, redis=None)
    hooks.sidecar = BrokenSidecar()
    hooks._lock = threading.Lock()
    told: list[int] = []
    with caplog.at_level("ERROR", logger="zato.arbiter"):
        hooks._drain(lambda signum, frame: told.append(signum), 15)
    assert told == [15]
    assert "graceful stop of server s1: the drain failed; stopping without it" in caplog.text
    assert "no such process" in caplog.text
