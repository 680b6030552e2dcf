"""The connector supervisor as the arbiter's sidecar: spawned when the server is ready,
spawned again with backoff (0.5 s doubling to 10 s) whenever it dies, stopped first on a
graceful stop. The arbiter calls tick() from its loop; nothing here blocks except stop().

gunicorn's reap_workers() reaps every child with waitpid(-1), so the death of the sidecar is
noticed through poll(), which cannot tell how it ended once someone else reaped it (the log
says so rather than a made-up code 0). A sidecar alive
but hung (its progress stamp, zato.connector.beat, unchanged for `hang_after`) is killed, and
so started again like one that died."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

from zato.common.retry import Backoff
from zato.connector import beat

logger = logging.getLogger("zato.arbiter")

HEALTHY_AFTER = 10.0  # a run this long resets the backoff


class Child(Protocol):
    """What the sidecar uses of its child: subprocess.Popen, or zato.server.fork.ForkedProcess."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def how_it_ended(proc: Child, code: int) -> str:
    """'exited with code 1', 'was killed by SIGKILL', or, when gunicorn's arbiter reaped it
    first (ForkedProcess.status_lost), that its exit status is not known: before, that was
    logged as 'exited with code 0', also for a supervisor killed with SIGKILL."""
    if getattr(proc, "status_lost", False):
        return "ended (its exit status went to gunicorn's arbiter, which reaps every child)"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Sidecar:
    def __init__(
        self,
        argv: list[str],
        spawn: Callable[[list[str]], Child] = subprocess.Popen,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[], int | None] | None = None,
        hang_after: float = 0.0,
    ):
        """`progress`: the supervisor's progress stamp (zato.connector.beat.stamp of its file;
        None: none yet); one that has not changed for `hang_after` seconds (0: never checked)
        means a hung supervisor, killed and started again."""
        self.argv = argv
        self._spawn = spawn
        self._clock = clock
        self._progress = progress
        self._watch = beat.Watch(hang_after)
        self.proc: Child | None = None
        self.started_at = 0.0
        self.next_start = 0.0
        self.backoff = Backoff()  # the project's one retry value (zato.common.retry)
        self.stopped = False
        self.spawns = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def poll(self) -> int | None:
        """The exit code if the sidecar has exited (negative: killed by that signal)."""
        return self.proc.poll() if self.proc is not None else None

    def tick(self) -> None:
        """Notice a death; (re)spawn when the backoff allows."""
        if self.stopped:
            return
        now = self._clock()
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                self._check_progress(now)
                return
            ran = now - self.started_at
            if ran >= HEALTHY_AFTER:
                self.backoff.reset()
            delay = self.backoff.next()
            self.next_start = now + delay
            logger.warning(
                "connector supervisor (pid %d) %s after %.1f s; restarting in %.1f s",
                self.proc.pid,
                how_it_ended(self.proc, code),
                ran,
                delay,
            )
            self.proc = None
        if now >= self.next_start:
            self._start(now)

    def _check_progress(self, now: float) -> None:
        if self._progress is None or self.proc is None:
            return
        stuck = self._watch.stuck_for(self._progress(), now)
        if stuck is not None:
            logger.warning(
                "connector supervisor (pid %d) made no progress for %.0f s: SIGKILL", self.proc.pid, stuck
            )
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _start(self, now: float) -> None:
        try:
            self.proc = self._spawn(self.argv)
        except OSError as e:
            logger.error("cannot start the connector supervisor: %s", e)
            self.next_start = now + self.backoff.next()
            return
        self.started_at = now
        self._watch.restart(
            now, self._progress() if self._progress is not None else None
        )  # the last one's file
        self.spawns += 1
        verb = "started" if self.spawns == 1 else "restarted"
        logger.info("connector supervisor %s (pid %d)", verb, self.proc.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the supervisor and wait up to `timeout` (then SIGKILL). Never respawns after."""
        self.stopped = True
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        logger.info("stopping the connector supervisor (pid %d)", proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "connector supervisor (pid %d) did not stop in %.1f s; killing it", proc.pid, timeout
            )
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)
