"""Which live servers a connector's calls try first: those its host can reach.

A server can be a live member (its heartbeat reaches Redis, the LB may reach it too) and still
be out of reach of the lease holder's host: a partition between the two hosts, a firewall rule,
a route lost. Each call that tried such a server first waited for the connection to fail
(invoke.CONNECT_TIMEOUT, or LINK_DEAD_AFTER on a kept connection) before the next server took
it: on the lab, 200 messages took 66 s instead of 5 s. So a server that failed is tried after
the others for a while, doubling while it keeps failing (so it is tried again now and then,
and taken back at once when it answers), and tried all the same when every other server
failed too. Pure: the clock is given, so a unit test drives it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

FIRST_PAUSE = 1.0  # seconds a server that failed once is tried last
MAX_PAUSE = 30.0  # at most this long, however often it failed


class Reach:
    """Thread-safe: several calls report at once."""

    def __init__(self, first: float = FIRST_PAUSE, cap: float = MAX_PAUSE):
        self.first, self.cap = first, cap
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}  # address -> tried last until (monotonic)
        self._pause: dict[str, float] = {}  # address -> the pause its next failure gets

    def order(self, servers: Sequence[str], start: int, now: float) -> list[str]:
        """`servers` from index `start` round, those that failed lately after the others (in
        the same rotation among themselves)."""
        turn = [servers[(start + i) % len(servers)] for i in range(len(servers))]
        with self._lock:
            late = {a for a in turn if self._until.get(a, 0.0) > now}
        return [a for a in turn if a not in late] + [a for a in turn if a in late]

    def failed(self, address: str, now: float) -> float:
        """The server could not be reached: it goes last for the returned seconds."""
        with self._lock:
            pause = self._pause.get(address, self.first)
            self._until[address] = now + pause
            self._pause[address] = min(pause * 2, self.cap)
        return pause

    def answered(self, address: str) -> None:
        """The server answered (whatever it said): it takes its turn again."""
        with self._lock:
            self._until.pop(address, None)
            self._pause.pop(address, None)

    def late(self, now: float) -> list[str]:
        """The servers tried last now (for a log line or a test)."""
        with self._lock:
            return sorted(a for a, until in self._until.items() if until > now)
