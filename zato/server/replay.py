"""A server's check that an internal call is fresh and new (zato.common.signing's stamp).

A call is taken only when its stamp is within STAMP_WINDOW of Redis's clock as this server
reads it (zato.coord.redis_clock), and only once: its nonce is written to Redis with SET NX,
kept until the stamp itself falls out of the window (after that the window refuses the call
anyway). Redis, not a worker's memory, remembers the nonces, so a call replayed to another
worker or another server is refused too. One SET per call (a batch of messages is one call).
"""

from __future__ import annotations

import redis

from zato.common.signing import STAMP_WINDOW
from zato.coord import redis_clock
from zato.coord.client import translate
from zato.coord.keys import Keys


class ReplayGuard:
    def __init__(self, client: redis.Redis, cluster: str, window: float = STAMP_WINDOW):
        self.client, self.keys, self.window = client, Keys(cluster), window

    def refusal(self, at: float, nonce: str) -> str:
        """Why a call stamped `at` (epoch seconds) with `nonce` is refused; "" when it is taken
        (its nonce is then spent). CoordError when Redis cannot say."""
        off = redis_clock.now(self.client) - at
        if abs(off) > self.window:
            when = "old" if off > 0 else "ahead of Redis's clock"
            return f"its stamp is {abs(off):.1f} s {when} (over the {self.window:g} s window)"
        keep_ms = max(1, int((self.window - off) * 1000) + 1)  # until `at` leaves the window
        key = self.keys.internal_nonce(nonce)
        with translate("recording an internal call's nonce", key):
            taken = self.client.set(key, b"1", nx=True, px=keep_ms)
        return "" if taken else "its nonce was used before: a replayed call"
