"""redis_clock.estimate(): a connector stamps every internal call with it. While Redis cannot
be reached, each call tried TIME again and waited for the socket timeout; now a failed
measurement is tried again after RETRY_AFTER, the calls meanwhile using the last offset."""

from __future__ import annotations

import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import free_port
from zato.coord import redis_clock


class CountingRedis(redis.Redis):
    """A real client of a port nobody listens on, counting its TIME commands."""

    asked = 0

    def time(self):  # noqa: ANN201 - redis-py's own
        self.asked += 1
        return super().time()


def test_a_failed_measurement_is_not_tried_again_at_every_call(monkeypatch) -> None:
    client = CountingRedis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    before = time.time()
    for _ in range(5):
        assert abs(redis_clock.estimate(client) - before) < 5  # this host's clock: no offset known
    assert client.asked == 1
    monkeypatch.setattr(redis_clock, "RETRY_AFTER", 0.0)  # its time has come: tried again
    redis_clock.estimate(client)
    assert client.asked == 2
