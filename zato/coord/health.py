"""What a process says of its Redis while Redis is away or refusing: one line when it starts
(what failed, which Redis, what to do), then at most one a minute with how many failures came
meanwhile, and one when Redis answers again ('Redis answers again after N s'), whichever of the
process's threads or greenlets saw it. The retries themselves are the callers' and keep their
pace: this only decides what is logged (zato.common.refusals)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zato.common.errors import CoordDataError, CoordForbidden, CoordRefused
from zato.common.refusals import SAY_AGAIN_EVERY, Refusals

logger = logging.getLogger("zato.redis")  # every process role says its Redis outages under this name

# What to do, by what the failure says
CREDENTIALS = (
    "Redis refuses the user or password of [kvdb] url: make them agree with Redis's ACL"
    " (docs/redis-acl.md) in server.conf, lb.conf and dashboard.conf, or restore the password in Redis"
)
UNREACHABLE = "is Redis running there, and reachable from this host? ([kvdb] url says where)"
REFUSING = "Redis takes writes again once its operator mends it (a replica, a full disk, its maxmemory)"


ODB_UNREACHABLE = (
    "is the ODB running there, and reachable from this host? ([odb] url in server.conf says where)"
)


def what_to_do(error: Exception, system: str = "Redis") -> str:
    said = str(error)
    if system != "Redis":
        return ODB_UNREACHABLE
    if isinstance(error, CoordForbidden):
        return "grant it to that user in Redis's ACL (docs/redis-acl.md)"
    if isinstance(error, (CoordRefused, CoordDataError)):  # it answered: a replica, its disk full...
        return REFUSING
    if "WRONGPASS" in said or "AuthenticationError" in said or "NOAUTH" in said or "invalid username" in said:
        return CREDENTIALS
    return UNREACHABLE


class RedisHealth:
    """One per process: its threads and greenlets say Redis failing through it (failed) and
    answering (ok). `where`: which Redis (its URL without the password, or its Sentinels).
    `system`: "ODB" for the lease keeper's epoch floor, whose outages are the ODB's, not Redis's."""

    def __init__(
        self,
        where: str = "",
        every: float = SAY_AGAIN_EVERY,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
        system: str = "Redis",
    ) -> None:
        self.where, self.clock, self.log, self.system = where, clock, log, system
        self._lock = threading.Lock()
        self._said = Refusals(every)
        self.down_since: float | None = None
        self.refusing = False  # the outage is Redis refusing writes: a read that works ends nothing
        self.last_error = ""

    def failed(self, what: str, error: Exception, answered_is_bug: bool = True) -> None:
        """`answered_is_bug`: an error Redis answered (CoordDataError) is a bug of ours, logged
        each time; False where it is part of an outage (a blocking take that a failover
        unblocked: UNBLOCKED), said as one."""
        if answered_is_bug and isinstance(error, CoordDataError):  # Redis answered: a bug, not an outage
            self.log.error("%s refused %s: %s", self.system, what, error)
            self.last_error = str(error)
            return
        now = self.clock()
        with self._lock:
            self.last_error = str(error)
            self.refusing = isinstance(error, (CoordRefused, CoordDataError))  # it answers: reads end nothing
            if self.down_since is None:
                self.down_since = now
            since = self.down_since
        hint = what_to_do(error, self.system)
        said = self._said.refused(now, hint)
        if said == 0:
            self.log.warning(
                "%s unreachable (%s%s): %s; %s (retried as before; said again at most once every %g s"
                " with a count, and when it answers)",
                self.system, what, self._at, error, hint, self._said.every,
            )  # fmt: skip
        elif said:
            self.log.warning(
                "%s still unreachable after %.0f s%s: %d more failure(s) since the last line, the latest"
                " (%s): %s",
                self.system, now - since, self._at, said, what, error,
            )  # fmt: skip

    def ok(self, wrote: bool = True) -> None:
        """Redis answered; `wrote`: what it answered included a write."""
        if self.down_since is None or (self.refusing and not wrote):
            return
        with self._lock:
            if self.down_since is None:
                return
            since, self.down_since = self.down_since, None
        now = self.clock()
        worked = self._said.worked(now)
        failures = worked[0] if worked else 0
        self.log.info(
            "%s answers again%s after %.1f s (%d failure(s) meanwhile)",
            self.system,
            self._at,
            now - since,
            failures,
        )

    @property
    def _at(self) -> str:
        return f" at {self.where}" if self.where else ""
