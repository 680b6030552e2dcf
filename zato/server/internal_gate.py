"""A server's checks of an internal call's stamp (zato.common.signing) and epoch, in one round
trip to Redis.

A call is taken only when its stamp is within STAMP_WINDOW of Redis's clock as this server
reads it (zato.coord.redis_clock), and only once: its nonce is written to Redis with SET NX,
kept until the stamp itself falls out of the window (after that the window refuses the call
anyway), and NONCE_MARGIN more: each server (and each worker) estimates Redis's clock on its
own, so one whose estimate is behind another's still takes a stamp the other already saw
leave the window. Without the margin, a captured call sent again and again around the end of
its window to every server ran again on the first whose estimate lagged (by a few ms of
measurement, or by a step of its host's clock since its last measurement). Redis, not a
worker's memory, remembers the nonces, so a call replayed to another worker or another server
is refused too.

The fencing check reads the newest epoch in the same pipeline: an action may rely only on a
read sent after it arrived (one sent earlier may have been answered before a takeover the
action came after), and this one is. So every call costs one round trip, as a lone call's epoch
read alone did before (a SET of its own beside it cost about 0.2 ms more per serial call,
bench/internal_call); concurrent calls each send their own (they shared one GET before, but
each needs its SET now).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from zato.common.signing import STAMP_WINDOW
from zato.coord import parse, redis_clock
from zato.coord.client import translate
from zato.coord.keys import Keys

# How much later than the admitting server's estimate says its stamp leaves the window a nonce
# is kept: what the servers' estimates of Redis's clock may disagree by (the measurement's round
# trip, a step of a host's clock too small to be measured again at once: redis_clock.STEP), at
# the cost of keeping each nonce that much longer in Redis.
NONCE_MARGIN = 10.0


@dataclass(frozen=True)
class Admission:
    refusal: str  # why the call is refused as stale or replayed; "" when its stamp is taken
    newest: int = 0  # the newest epoch, read after the call arrived (when its stamp was taken)


class InternalGate:
    def __init__(self, client: redis.Redis, cluster: str, window: float = STAMP_WINDOW):
        self.client, self.keys, self.window = client, Keys(cluster), window

    def admit(self, at: float, nonce: str) -> Admission:
        """Whether a call stamped `at` (epoch seconds) with `nonce` is taken (its nonce is then
        spent), and the newest epoch. CoordError when Redis cannot say (BadEntry: the epoch
        key holds no whole number)."""
        off = redis_clock.now(self.client) - at
        if abs(off) > self.window:
            when = "old" if off > 0 else "ahead of Redis's clock"
            return Admission(f"its stamp is {abs(off):.1f} s {when} (over the {self.window:g} s window)")
        keep_ms = max(1, int((self.window - off + NONCE_MARGIN) * 1000) + 1)  # until `at` left every window
        key = self.keys.internal_nonce(nonce)
        with translate("recording an internal call's nonce and reading the lease epoch", key):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, b"1", nx=True, px=keep_ms)
            pipe.get(self.keys.epoch)
            taken, newest = pipe.execute()
        if not taken:
            return Admission("its nonce was used before: a replayed call")
        return Admission("", parse.epoch(newest))
