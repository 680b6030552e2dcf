"""Refusals that only a change of configuration ends (an IBM MQ user without +connect or +get,
a queue that does not exist; an AMQP broker that refuses the definition's login or virtual
host): tried again less and less often, said once in full with what to do, then at most once a
minute with a count, and once more when it works again. Shared by the IBM MQ and AMQP
connectors (ibmmq_common, amqp_common)."""

from __future__ import annotations

import logging
import threading
import time

from zato.connector.base import Context, RetryPolicy

# Tried again after 0.5, 1, 2, 4, 8, 16, then every 30 s, so a grant is taken up within 30 s.
REFUSED = RetryPolicy(start=0.5, step=0.0, max=30.0, factor=2.0)
SAY_REFUSED_EVERY = 60.0  # the same refusal is said again at most this often, with a count


class Refusals:
    """What to say of refusals that only a configuration change ends (a user without +get, a
    queue that does not exist): the first in full, with what to do; the same one again at most
    once every `every` seconds, with how many came meanwhile; and when it works again. A pure
    decision over `now` (monotonic seconds); one object serves all of a connector's threads,
    so N connections say it once. Each caller keeps its own waits (REFUSED.delays())."""

    def __init__(self, every: float = SAY_REFUSED_EVERY):
        self.every = every
        self._lock = threading.Lock()
        self.key: object = None  # the refusal being said (None: none since it last worked)
        self.since = 0.0  # when it was first refused
        self.said_at = 0.0
        self.unsaid = 0  # refusals since it was last said
        self.count = 0  # refusals since it was first refused

    def refused(self, now: float, key: object) -> int | None:
        """A refusal `key` at `now`: how many came since it was last said when it is to be said
        now (0: the first of this refusal, say it in full), None when it stays unsaid."""
        with self._lock:
            self.count += 1
            if key != self.key:
                self.key, self.since, self.said_at, self.unsaid, self.count = key, now, now, 0, 1
                return 0
            self.unsaid += 1
            if now - self.said_at < self.every:
                return None
            said, self.unsaid, self.said_at = self.unsaid, 0, now
            return said

    def worked(self, now: float) -> tuple[int, float] | None:
        """It works again: (refusals, seconds since the first) to say once, None when none."""
        with self._lock:
            if self.key is None:
                return None
            out = (self.count, now - self.since)
            self.key, self.count, self.unsaid = None, 0, 0
            return out


def say_refused(
    ctx: Context, refusals: Refusals, key: object, what: str, delay: float, log: logging.Logger
) -> None:
    """A refusal only a configuration change ends: in status (state `refused`, last error with
    the count and the next try) and in the log once, then at most once every
    SAY_REFUSED_EVERY s with how many came since."""
    said = refusals.refused(time.monotonic(), key)
    ctx.stats.error(f"{what}; refused {refusals.count} time(s), next try in {delay:g} s")
    ctx.stats.state("refused")
    if said == 0:
        log.error(
            "%s: %s; trying again in %g s, less and less often (every %g s at most), taken up once "
            "it works (said again at most once every %g s)",
            ctx.label,
            what,
            delay,
            REFUSED.max,
            refusals.every,
        )
    elif said:
        log.error(
            "%s: still refused, %d more time(s) since said: %s; next try in %g s",
            ctx.label,
            said,
            what,
            delay,
        )
