"""What a process logs of its Redis while it is away (zato.coord.health.RedisHealth), over a fake
clock: the first failure in full with which Redis and what to do, then at most one line a
minute with a count however often its threads fail, and one line when Redis answers again."""

from __future__ import annotations

import logging

from zato.common.errors import CoordDataError, CoordUnavailable
from zato.coord.health import RedisHealth

REFUSED = CoordUnavailable(
    "config events: ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."
)
WRONGPASS = CoordUnavailable(
    "config events: AuthenticationError: invalid username-password pair or user is disabled."
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:  # noqa: ANN001
    return [r.getMessage() for r in caplog.records if r.name == "zato.redis"]


def test_an_outage_is_one_line_then_one_a_minute_with_a_count_then_one_when_it_answers(caplog):
    clock = Clock()
    health = RedisHealth("redis://127.0.0.1:1/0", clock=clock)
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        for _ in range(130):  # every half second, from two threads: 260 failures in 65 s
            health.failed("config events", REFUSED)
            health.failed("membership heartbeat", REFUSED)
            clock.now += 0.5
        health.ok()
    said = lines(caplog)
    assert len(said) == 3, said
    assert said[0].startswith("Redis unreachable (config events at redis://127.0.0.1:1/0): ")
    assert "is Redis running there, and reachable from this host?" in said[0]
    assert said[1].startswith(
        "Redis still unreachable after 60 s at redis://127.0.0.1:1/0: 240 more failure(s)"
    )
    assert said[2] == "Redis answers again at redis://127.0.0.1:1/0 after 65.0 s (260 failure(s) meanwhile)"


def test_credentials_refused_say_to_mend_the_password(caplog):
    health = RedisHealth("redis://zato:******@127.0.0.1:1/0", clock=Clock())
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("config events", WRONGPASS)
        health.failed("config events", WRONGPASS)
    (said,) = lines(caplog)
    assert "Redis refuses the user or password of [kvdb] url" in said and "docs/redis-acl.md" in said


def test_a_read_that_works_ends_no_outage_of_writes_and_a_bug_is_no_outage(caplog):
    from zato.common.errors import CoordRefused

    health = RedisHealth(clock=Clock())
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed(
            "lease check", CoordRefused("lease check: Redis refuses writes (READONLY: it is a replica)")
        )
        health.ok(wrote=False)
        assert health.down_since is not None
        health.ok()
        health.failed("status write", CoordDataError("status write: WRONGTYPE"))
    said = lines(caplog)
    assert len(said) == 3 and said[1].startswith("Redis answers again after"), said
    assert said[2] == "Redis refused status write: status write: WRONGTYPE"
    assert health.down_since is None


def test_an_unblocked_take_in_a_failover_is_part_of_the_outage_not_a_bug(caplog):
    from zato.common.errors import CoordRefused

    health = RedisHealth(clock=Clock())
    unblocked = CoordDataError(
        "invoke_async take: ResponseError: UNBLOCKED force unblock (master -> replica?)"
    )
    with caplog.at_level(logging.INFO, logger="zato.redis"):
        health.failed("invoke_async", unblocked, answered_is_bug=False)
        health.failed("invoke_async", CoordRefused("invoke_async register: Redis refuses writes"), False)
    (said,) = lines(caplog)
    assert said.startswith("Redis unreachable (invoke_async): ") and "Redis takes writes again" in said
