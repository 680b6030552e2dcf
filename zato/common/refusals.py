"""What to say of a failure that lasts: the first in full, the same again at most once a minute
with how many came meanwhile, and once when it ends. The connectors' refusals (an IBM MQ user
without +get, an AMQP login refused: zato.connector.refusals) and a process's Redis outage
(zato.coord.health) say theirs through it."""

from __future__ import annotations

import threading

SAY_AGAIN_EVERY = 60.0  # the same failure is said again at most this often, with a count


class Refusals:
    """What to say of refusals that only a configuration change ends (a user without +get, a
    queue that does not exist): the first in full, with what to do; the same one again at most
    once every `every` seconds, with how many came meanwhile; and when it works again. A pure
    decision over `now` (monotonic seconds); one object serves all of a connector's threads,
    so N connections say it once. Each caller keeps its own waits (REFUSED.delays())."""

    def __init__(self, every: float = SAY_AGAIN_EVERY):
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
