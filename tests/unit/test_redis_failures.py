"""zato.connector.refusals.RedisFailures: what a connector says, and how long it waits, while
Redis alone fails its calls (the broker connection kept: tests/integration/
test_amqp_outgoing_redis_fails.py). Pure logic over a recording context."""

from __future__ import annotations

import logging
import types

from zato.common.errors import CoordDataError, CoordUnavailable
from zato.connector.refusals import REDIS_AWAY, REFUSED, RedisFailures

WRONGTYPE = CoordDataError(
    "taking messages for outgoing amqp 'orders': ResponseError: WRONGTYPE Operation against a key "
    "holding the wrong kind of value"
)
AWAY = CoordUnavailable(
    "waiting for a message for outgoing amqp 'orders': ConnectionError: Connection refused."
)


class Stats:
    def __init__(self) -> None:
        self.states: list[str] = []
        self.errors: list[str] = []

    def state(self, state: str) -> None:
        self.states.append(state)

    def error(self, text: str) -> None:
        self.errors.append(text)


def _failures() -> tuple[RedisFailures, Stats]:
    stats = Stats()
    ctx = types.SimpleNamespace(
        label="amqp-outgoing 'orders'", settings=types.SimpleNamespace(cluster="c1"), stats=stats
    )
    return RedisFailures(ctx, logging.getLogger("test.redis_failures"), "the broker connection"), stats  # type: ignore[arg-type]


def _delays(policy, n: int) -> list[float]:  # noqa: ANN001 - a RetryPolicy
    it = policy.delays()
    return [next(it) for _ in range(n)]


def test_an_answered_error_is_said_once_with_the_hint_and_tried_less_and_less_often(caplog):
    failures, stats = _failures()
    caplog.set_level(logging.INFO, "test.redis_failures")
    assert (
        [failures.failed(WRONGTYPE) for _ in range(8)] == _delays(REFUSED, 8) == [0.5, 1, 2, 4, 8, 16, 30, 30]
    )
    lines = caplog.records
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR
    assert "Redis refused it: taking messages" in lines[0].getMessage()
    assert "redis-cli --scan --pattern 'zato:c1:*'" in lines[0].getMessage()
    assert stats.states[-1] == "refused"


def test_an_unreachable_redis_is_one_warning_that_the_connection_is_kept_and_tries_every_5_s_at_most(caplog):
    failures, stats = _failures()
    caplog.set_level(logging.INFO, "test.redis_failures")
    assert [failures.failed(AWAY) for _ in range(6)] == _delays(REDIS_AWAY, 6) == [0.5, 1, 2, 4, 5, 5]
    [line] = caplog.records
    assert line.levelno == logging.WARNING
    assert "Redis failed (waiting for a message" in line.getMessage()
    assert "the broker connection is kept" in line.getMessage()
    assert stats.states[-1] == "reconnecting"


def test_once_redis_answers_it_is_said_and_the_next_failure_starts_again_in_full(caplog):
    failures, stats = _failures()
    caplog.set_level(logging.INFO, "test.redis_failures")
    for _ in range(4):
        failures.failed(AWAY)
    failures.worked()
    failures.worked()  # said once
    assert failures.failed(WRONGTYPE) == 0.5  # another failure: its own policy, from the start
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 3, said
    assert (
        "Redis answers again after 4 failed try(s)" in said[1] and "the broker connection was kept" in said[1]
    )
    assert "Redis refused it" in said[2]
    assert "running" in stats.states
