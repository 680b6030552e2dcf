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
