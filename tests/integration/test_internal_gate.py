"""A server's check of an internal call's stamp (zato.server.internal_gate) against a real
Redis, with servers whose estimates of Redis's clock disagree, as real servers' do."""

from __future__ import annotations

import time
import types

import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name
from zato.common.signing import new_stamp, parse_stamp
from zato.coord import redis_clock
from zato.server.internal_gate import InternalGate

WINDOW = 2.0  # short, so the stamp leaves it within the test


def test_a_replay_after_the_window_to_a_server_whose_clock_lags_is_refused(monkeypatch):
    """Each server estimates Redis's clock on its own (zato.coord.redis_clock): one whose host
    clock stepped back by less than redis_clock.STEP since its last measurement (a larger step is
    measured again at once), or that measured a few ms off, still takes a stamp another server
    already saw leave the window. Before, the nonce was kept only until
    the admitting server's estimate saw the stamp leave the window: a captured call sent again
    just after that to the lagging server ran a second time."""
    cluster = cluster_name("review9-gate")
    lagging, admitting = redis.Redis.from_url(REDIS_URL), redis.Redis.from_url(REDIS_URL)
    try:
        redis_clock.now(lagging)  # measured while its host's clock is right
        step = 0.8  # then its host's clock steps back, too little to be measured again (redis_clock.STEP)
        stepped = types.SimpleNamespace(time=lambda: time.time() - step, monotonic=time.monotonic)
        monkeypatch.setattr(redis_clock, "time", stepped)
        now = redis_clock.now(admitting)  # measured after the step: its estimate is right
        at, nonce = parse_stamp(new_stamp(now - 1.5))  # a call sent 1.5 s ago, still in the window
        assert InternalGate(admitting, cluster, WINDOW).admit(at, nonce).refusal == ""
        time.sleep(0.7)  # the stamp has left the window on Redis's clock: 2.2 s old
        late = InternalGate(admitting, cluster, WINDOW).admit(at, nonce)
        assert "s old (over the 2 s window)" in late.refusal, late
        replay = InternalGate(lagging, cluster, WINDOW).admit(at, nonce)  # 1.4 s old to it: in its window
        assert replay.refusal == "its nonce was used before: a replayed call", replay
    finally:
        cleanup_redis(cluster)
        lagging.close()
        admitting.close()
