"""Signs of progress: a hung connector, or a hung connector supervisor, is restarted.

A connector process that is alive but no longer works (stopped with SIGSTOP, a deadlock, a
client library stuck in a call that never returns) would otherwise hold its channel for ever:
the supervisor restarts children that exit, not ones that hang. So every connector's main
loop, each time it asks whether to stop (zato.connector.base.Context.should_stop), touches a
file of its own, `work/connector-beats/PID`, at most once a second, as gunicorn's workers touch
theirs. The supervisor kills a RUNNING child whose file it has not seen touched for `[main]
connector_hang_after` seconds of its own monotonic clock (SIGKILL: a hung process does not
answer SIGTERM either), and its state machine starts it again. A child whose file is missing
(the disk was full when it started) is never taken for hung.

One level up, the supervisor's main loop touches `work/supervisor-beat` and the server's
arbiter restarts a supervisor that stopped touching it (zato.server.sidecar): a stopped
supervisor also stopped the server's membership heartbeats, so the load balancer had dropped
a server whose workers served on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable

FOLDER = "connector-beats"
EVERY = 1.0  # seconds between two touches of the file
FROZEN_GAP = 5.0  # two checks this far apart (they come every 20-250 ms): the checker was stopped


def path(server_dir: str, pid: int) -> str:
    return os.path.join(server_dir, "work", FOLDER, str(pid))


def supervisor_path(server_dir: str) -> str:
    """The connector supervisor's own file, read by the server's arbiter (zato.server.sidecar)."""
    return os.path.join(server_dir, "work", "supervisor-beat")


class Beat:
    """The side that shows progress: call it from the main loop. `file`: path() or
    supervisor_path()."""

    def __init__(self, file: str, clock: Callable[[], float] = time.monotonic):
        self.path = file
        self._clock = clock
        self._next = 0.0
        with contextlib.suppress(OSError):  # no file: never taken for hung (see above)
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a"):
                pass

    def __call__(self) -> None:
        now = self._clock()
        if now >= self._next:
            self._next = now + EVERY
            with contextlib.suppress(OSError):
                os.utime(self.path)


class Watch:
    """The checking side's verdict on one process, from its stamps (stamp() of its file).

    Hung: its stamp has not changed for `hang_after` seconds of the checker's clock since it
    first changed (before that the process is starting, or the stamp is a file left by the one
    before it; no stamp at all: never). No verdict after a gap of over FROZEN_GAP between two
    checks: the checker itself was stopped (a paused host), so the process could not be seen
    beating either."""

    def __init__(self, hang_after: float):
        self.hang_after = hang_after  # 0: never hung
        self.restart(0.0)

    def restart(self, now: float, stamp: int | None = None) -> None:
        """A new process to watch, whose file reads `stamp` now."""
        self.stamp, self.progressed_at, self.checked_at, self.beating = stamp, now, now, False

    def stuck_for(self, stamp: int | None, now: float) -> float | None:
        """Seconds without progress if the process is hung (said once: the clock starts again),
        else None."""
        frozen = now - self.checked_at > FROZEN_GAP
        self.checked_at = now
        if stamp != self.stamp or frozen:  # progress, or no verdict
            self.stamp, self.progressed_at = stamp, now
            self.beating = stamp is not None and (self.beating or not frozen)  # no file: no verdict
            return None
        stuck = now - self.progressed_at
        if not self.hang_after or not self.beating or stuck < self.hang_after:
            return None
        self.progressed_at = now  # once: its exit is what comes next
        return stuck


class Files:
    """The supervisor's side (zato.connector.process.Beats)."""

    def __init__(self, server_dir: str):
        self.server_dir = server_dir

    def clear(self) -> None:
        """At the supervisor's start: the files of children of a supervisor before it."""
        with contextlib.suppress(OSError):
            shutil.rmtree(os.path.join(self.server_dir, "work", FOLDER))

    def stamp(self, pid: int) -> int | None:
        return stamp(path(self.server_dir, pid))

    def forget(self, pid: int) -> None:
        """Remove the file of a child that ended (a killed one could not)."""
        with contextlib.suppress(OSError):
            os.unlink(path(self.server_dir, pid))


def stamp(file: str) -> int | None:
    """When `file` was last touched (None: there is none). Only compared with the stamp read
    before: a change is progress, whatever the wall clock did meanwhile."""
    try:
        return os.stat(file).st_mtime_ns
    except OSError:
        return None
