"""A stopping server waits for the load balancers to report it drained (lb_view), bounded by
[main] drain_seconds: no sockets, a fake clock."""

from __future__ import annotations

from zato.server.arbiter import wait_drained


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scripted(*steps: dict | None):
    """views() answering each step in turn, then the last one for ever."""
    answers = list(steps)

    def views() -> dict | None:
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
