"""Connector child processes: one explicit state machine per child, and a manager for the set.

States (supervisor style):

    STOPPED --start--> STARTING --up for startsecs--> RUNNING --exit after stable_after--> EXITED
                          |                              |                                      |
                          +--exit--> BACKOFF <--early exit (before stable_after)                STARTING
                                        |--delay--> STARTING    (fatal_after failures in a row: FATAL)
    any live state --stop--> STOPPING --exit (SIGTERM, then SIGKILL after stop_timeout)--> STOPPED
    (drain_timeout instead of stop_timeout when the definition changed or went, or an operator
    asked for a restart: the child may finish what it runs; stop_all still kills at its own.)

An edited definition (a new config_hash) retires the old child (STOPPING) and adds a new one.
A channel's new child starts at once, while the old one still finishes what it runs: the broker
gives each message to one consumer (AMQP, IBM MQ), and a ZeroMQ channel unbinds first and hands
over what it had queued. An outgoing connection's new child (WAITS_FOR_OLD) starts only once the
old one has exited: at start it publishes whatever the processing list holds, which while the old
one lives includes what that one published and awaits the broker's confirm for, so both would
send it (the messages wait in Redis meanwhile, nothing is lost). A renamed one's too (the same
definition, by its ODB id, under a new name): its new child starts once the old one, still named
after the old name, has exited, and `on_renamed` is told first: the supervisor's renames thread
hands what the old name's lists hold over to the new name (zato.connector.supervisor).

An exit with EXIT_CONFIG (bad configuration: restarting will not help) goes to FATAL at once.
A FATAL child is tried again when its definition changes. Every transition goes through
Child._to() and is logged as one line. The OS calls (spawn,
signal, poll, clock) sit behind the small `OS` seam so the restart logic is unit-testable.

Contract for connector programs (ConnectorSpec.argv): they get the environment variables
ZATO_EPOCH (the lease epoch they act under: send it as X-Zato-Epoch), ZATO_INVOKE_KEY (that
epoch's key to sign internal calls with, zato.common.signing), ZATO_SERVER_DIR,
SETTINGS_ENV (the server's settings without the cluster secret, zato.config.transfer) and
MEMBERS_KEY_ENV (the key member entries are verified with, hex) and OUTGOING_KEY_ENV (the key
outgoing messages are verified with, hex: zato.coord.signing.outgoing_key), which
zato.connector.run takes instead of reading server.conf, and their definition (ConnectorSpec.definition,
passwords included) from the OS seam: the zygote hands it to the forked child in memory; a
plain process reads it from the ODB itself. They must
exit promptly on SIGTERM, and exit on their own when their parent (the supervisor) is gone
(check os.getppid() periodically). On Linux the real OS seam also asks the kernel to SIGKILL
them when the supervisor dies (PR_SET_PDEATHSIG), as a second line of defence.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from zato.common.errors import EXIT_CONFIG
from zato.connector import beat
from zato.lifecycle.entry import die_with_parent

logger = logging.getLogger("zato.supervisor.process")

# Kinds whose new child starts only once the old one has exited (see the module's docstring)
WAITS_FOR_OLD = frozenset({"amqp-outgoing", "ibm-mq-outgoing"})

SETTINGS_ENV = "ZATO_SETTINGS"  # never in argv or a log line: it holds the ODB URL's password
MEMBERS_KEY_ENV = "ZATO_MEMBERS_KEY"
OUTGOING_KEY_ENV = "ZATO_OUTGOING_KEY"


class State(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"


LIVE = (State.STARTING, State.RUNNING, State.STOPPING)
# What an unrequested exit and giving up are logged at (the other transitions: INFO)
_LEVELS = {State.EXITED: logging.WARNING, State.BACKOFF: logging.WARNING, State.FATAL: logging.ERROR}


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector process the holder must run (built by zato.connector.registry)."""

    name: str  # unique in the cluster, e.g. "amqp-channel:orders"
    kind: str  # amqp-channel | amqp-outgoing | zmq-channel | ibm-mq-channel | ibm-mq-outgoing
    argv: tuple[str, ...]  # the command that runs it (python -m zato.connector.run ...); no secret
    config_hash: str  # changes whenever its definition changes -> restart
    # What the connector runs with, passwords included: never in argv, env, logs or a repr.
    # config_hash covers it, so specs compare by their hash alone.
    definition: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RestartPolicy:
    """How children are (re)started and stopped; a value, not a loop."""

    start: float = 0.5  # first backoff delay after a failed start
    step: float = 1.0  # added per further consecutive failure
    max: float = 5.0  # backoff ceiling
    fatal_after: int = 5  # consecutive failed starts before giving up (FATAL)
    startsecs: float = 0.3  # a child up this long counts as started (RUNNING)
    stable_after: float = 10.0  # an exit before this much uptime counts as a failed start
    stop_timeout: float = 0.3  # SIGTERM, then SIGKILL after this long (lease lost, server stopping)
    # A child stopped because its definition changed or went, or on an operator's request: the
    # lease is still ours, so it gets the time to finish what it runs (a channel's own drain is
    # 5 s); killed sooner, an AMQP message it had run comes again (a duplicate); a ZeroMQ
    # channel hands what it had only queued to its next connector at once (zmq_channel).
    drain_timeout: float = 6.0
    # A RUNNING child whose progress stamp (zato.connector.beat) has not changed for this long
    # is hung: SIGKILL, and started again. 0: never. Above the longest a connector's loop may
    # wait on one call (a service answering within the invoke timeout, 30 s).
    hang_after: float = 0.0

    def delay(self, failures: int) -> float:
        """Backoff before start attempt number failures+1 (failures >= 1)."""
        return min(self.max, self.start + self.step * max(0, failures - 1))


class Handle(Protocol):
    pid: int


H = TypeVar("H", bound=Handle)


class OS(Protocol[H]):
    """The only place child processes touch the operating system. H: what spawn() returns
    and the other calls take back (RealOS: a Popen; the zygote's seam: its own handles)."""

    def spawn(self, argv: tuple[str, ...], env: dict[str, str], definition: dict | None = None) -> H: ...

    def poll(self, handle: H) -> int | None: ...  # exit code once it ended, else None

    def signal(self, handle: H, sig: int) -> None: ...

    def now(self) -> float: ...


class RealOS:
    """subprocess-based seam. Spawn only from one long-lived thread: the kernel sends the
    parent-death signal when the *thread* that forked the child ends."""

    def spawn(
        self, argv: tuple[str, ...], env: dict[str, str], definition: dict | None = None
    ) -> subprocess.Popen:
        """`definition` stays here: a plain process reads its own from the ODB."""
        return subprocess.Popen(
            list(argv), env={**os.environ, **env}, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
        )

    def poll(self, handle: subprocess.Popen) -> int | None:
        return handle.poll()

    def signal(self, handle: subprocess.Popen, sig: int) -> None:
        if handle.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                handle.send_signal(sig)

    def now(self) -> float:
        return time.monotonic()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Beats(Protocol):
    """The children's progress stamps (zato.connector.beat.Files), for the hang check."""

    def stamp(self, pid: int) -> int | None: ...  # None: the child has none

    def forget(self, pid: int) -> None: ...


class Child:
    """One connector process and its state machine."""

    def __init__(self, spec: ConnectorSpec, policy: RestartPolicy, os_: OS[Any], beats: Beats | None = None):
        self.spec = spec
        self.policy = policy
        self.os = os_
        self.beats = beats
        self.watch = beat.Watch(policy.hang_after)  # the hang check, when there are beats
        self.state = State.STOPPED
        self.handle: Handle | None = None
        self.env: dict[str, str] = {}
        self.failures = 0  # consecutive failed starts
        self.restarts = 0  # spawns after the first one
        self.spawns = 0
        self.last_error = ""
        self.started_at = 0.0
        self.retry_at = 0.0
        self.kill_at = 0.0
        self.killed = False
        self.stop_timeout = policy.stop_timeout  # of the stop under way
        self.pid_known = False  # the OS seam said its pid (a zygote may answer on a later tick)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        """None also while its OS seam has not said it yet (a zygote that has not answered)."""
        return (self.handle.pid or None) if self.handle is not None and self.state in LIVE else None

    def _to(self, new: State, detail: str = "") -> None:
        """Every transition, logged: an exit nobody asked for (EXITED, BACKOFF) at WARNING and
        giving up (FATAL) at ERROR, so a log shipper's alert on WARNING and above sees them
        (before, every transition was an INFO); the rest at INFO."""
        old, self.state = self.state, new
        pid = f" pid {self.handle.pid}" if self.handle is not None and new in LIVE and self.handle.pid else ""
        if self.handle is not None and old in LIVE and new not in LIVE and self.handle.pid:
            # whose exit it was: an edit starts the new child while the old one still stops
            detail = f"pid {self.handle.pid} {detail}" if detail else f"pid {self.handle.pid}"
        detail = f": {detail}" if detail else ""
        level = _LEVELS.get(new, logging.INFO)
        logger.log(level, "child %s %s->%s%s%s", self.name, old.value, new.value, pid, detail)

    # -- commands -----------------------------------------------------------------------------
    def start(self, env: dict[str, str]) -> None:
        self.env = dict(env)
        if self.state in (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF):
            self.failures = 0 if self.state is State.FATAL else self.failures
            self._spawn()

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, and SIGKILL after `timeout` (default: the policy's stop_timeout)."""
        if self.state in (State.STARTING, State.RUNNING):
            self.os.signal(self.handle, signal.SIGTERM)
            self.stop_timeout = self.policy.stop_timeout if timeout is None else timeout
            self.kill_at, self.killed = self.os.now() + self.stop_timeout, False
            self._to(State.STOPPING)
        elif self.state in (State.BACKOFF, State.EXITED, State.FATAL):
            self._to(State.STOPPED)

    def kill_now(self) -> None:
        """SIGKILL at once (used when the stop deadline is over)."""
        if self.state is State.STOPPING and not self.killed:
            self.os.signal(self.handle, signal.SIGKILL)
            self.killed = True

    # -- the clock tick -----------------------------------------------------------------------
    def tick(self) -> bool:
        """Advance the state machine; True if the state changed."""
        before = self.state
        now = self.os.now()
        if self.state in LIVE:
            try:
                code = self.os.poll(self.handle)
            except OSError as e:  # its start failed after all (the zygote answered it late)
                if self.state is State.STOPPING:  # stopped before: nothing to start again
                    self.handle = None
                    self._to(State.STOPPED, f"it never started: {e.strerror or e}")
                else:
                    self._spawn_failed(e)
                return self.state is not before
            if code is not None:
                self._exited(code)
            elif self.state is State.STARTING and not self.pid_known:
                self._pid_came(now)
            elif self.state is State.STARTING and now - self.started_at >= self.policy.startsecs:
                self._to(State.RUNNING)
            elif self.state is State.RUNNING and (stuck := self._stuck_for(now)) is not None:
                self.last_error = f"hung: no progress for {stuck:.0f} s"
                logger.warning(
                    "child %s (pid %s) made no progress for %.0f s ([main] connector_hang_after): SIGKILL",
                    self.name, self.handle.pid if self.handle else "?", stuck,
                )  # fmt: skip
                self.os.signal(self.handle, signal.SIGKILL)
            elif self.state is State.STOPPING and now >= self.kill_at and not self.killed:
                logger.warning("child %s did not stop within %.2fs: SIGKILL", self.name, self.stop_timeout)
                self.kill_now()
        elif self.state is State.BACKOFF and now >= self.retry_at:
            self._spawn()
        return self.state is not before

    def _stuck_for(self, now: float) -> float | None:
        if self.beats is None or self.handle is None:
            return None
        return self.watch.stuck_for(self.beats.stamp(self.handle.pid), now)

    def _exited(self, code: int) -> None:
        # pid 0: its OS seam never said one (a zygote lost before it answered the spawn)
        how = describe_exit(code) if self.handle is None or self.handle.pid else "it never started"
        if self.beats is not None and self.handle is not None and self.handle.pid:
            self.beats.forget(self.handle.pid)
        if self.state is State.STOPPING:
            self._to(State.STOPPED, how)
            return
        self.last_error = how
        if code == EXIT_CONFIG:
            self._to(State.FATAL, f"{how} (bad configuration: not restarting until it changes)")
            return
        if self.state is State.RUNNING and self.os.now() - self.started_at >= self.policy.stable_after:
            self.failures = 0
            self._to(State.EXITED, how)
            self._spawn()
            return
        self.failures += 1  # died while starting, or soon after
        if self.failures >= self.policy.fatal_after:
            self._to(State.FATAL, f"{how}; gave up after {self.failures} failed starts")
            return
        delay = self.policy.delay(self.failures)
        self.retry_at = self.os.now() + delay
        self._to(State.BACKOFF, f"{how}; retrying in {delay:.1f}s")

    def _spawn(self) -> None:
        if self.spawns:
            self.restarts += 1
        self.spawns += 1
        try:
            self.handle = self.os.spawn(self.spec.argv, self.env, self.spec.definition)
        except OSError as e:
            self._spawn_failed(e)
            return
        self.started_at = self.os.now()
        self.watch.restart(self.started_at)  # its file is made by the new process
        self.pid_known = bool(self.handle.pid)
        self._to(State.STARTING)

    def _pid_came(self, now: float) -> None:
        """The OS seam says the pid of a start it had not answered at once (the zygote answered
        late, or started it as a plain process instead): up from now."""
        if self.handle is None or not self.handle.pid:
            return
        self.pid_known, took = True, now - self.started_at
        self.started_at = now
        self.watch.restart(now)
        logger.info(
            "child %s STARTING pid %d (%.2f s after it was asked for)", self.name, self.handle.pid, took
        )

    def _spawn_failed(self, e: OSError) -> None:
        self.handle = None
        self.last_error = f"cannot start {self.spec.argv[0]!r}: {e.strerror or e}"
        self.failures += 1
        if self.failures >= self.policy.fatal_after:
            self._to(State.FATAL, self.last_error)
        else:
            self.retry_at = self.os.now() + self.policy.delay(self.failures)
            self._to(State.BACKOFF, self.last_error)

    def snapshot(self) -> dict:
        return {
            "name": self.name,
            "kind": self.spec.kind,
            "state": self.state.value,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


class Manager:
    """The set of children the holder runs: reconcile to a desired set, tick, stop all."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        os_: OS[Any] | None = None,
        beats: Beats | None = None,
    ):
        self.policy = policy or RestartPolicy()
        self.os: OS[Any] = os_ or RealOS()
        self.beats = beats  # for the children's hang check
        self.children: dict[str, Child] = {}
        self._retired: list[Child] = []  # removed or replaced, still stopping
        self._restarting: set[str] = set()  # stopping on request; started again once stopped
        self._after_old: dict[str, dict[str, str]] = {}  # name -> env: starts once the old one exited
        self._renamed: dict[str, list[ConnectorSpec]] = {}  # new name -> what it was before (WAITS_FOR_OLD)
        # Called with (old spec, new spec) right before a renamed connection's new child starts
        self.on_renamed: Callable[[ConnectorSpec, ConnectorSpec], None] | None = None

    def reconcile(self, desired: dict[str, ConnectorSpec], env: dict[str, str]) -> None:
        """Start what is missing, stop what was removed, restart only what changed."""
        renames = self._renames(desired)
        for name, child in list(self.children.items()):
            spec = desired.get(name)
            if spec is None or spec.config_hash != child.spec.config_hash:
                self._retire(child, spec, renames.get(name))
        for name, spec in desired.items():
            if name not in self.children:
                child = Child(spec, self.policy, self.os, self.beats)
                self.children[name] = child
                if spec.kind in WAITS_FOR_OLD and self._old_alive(spec):
                    self._after_old[name] = dict(env)  # said by _retire
                else:
                    self._start(child, env)

    def _renames(self, desired: dict[str, ConnectorSpec]) -> dict[str, ConnectorSpec]:
        """Old name -> new spec of each running outgoing connection that `desired` has under
        another name (the same ODB row): it was renamed."""
        out = {}
        for name, child in self.children.items():
            if name not in desired and child.spec.kind in WAITS_FOR_OLD:
                found = [s for s in desired.values() if s.name not in self.children and _same(child.spec, s)]
                if found:
                    out[name] = found[0]
        return out

    def _start(self, child: Child, env: dict[str, str]) -> None:
        for old in self._renamed.pop(child.name, []):
            if self.on_renamed is not None:
                self.on_renamed(old, child.spec)
        child.start(env)

    def _retire(self, child: Child, spec: ConnectorSpec | None, renamed: ConnectorSpec | None = None) -> None:
        """Stop a child whose definition changed or went; it stays among the retired until it exited."""
        name, pid = child.name, child.pid
        self._after_old.pop(name, None)  # a replacement that never started: nothing to wait for
        earlier = self._renamed.pop(name, [])  # renamed again before it started
        if renamed is not None:
            self._renamed[renamed.name] = [*earlier, child.spec]
            now = "stopping it" if pid is None else f"stopping pid {pid} (its messages wait in Redis)"
            logger.info("child %s: renamed %s, %s; %s starts once it has exited", name, renamed.name, now,
                        renamed.name)  # fmt: skip
            child.stop(self.policy.drain_timeout)
            self._retired.append(self.children.pop(name))
            return
        if spec is not None and earlier:  # edited before it started: still renamed from those
            self._renamed[name] = earlier
        # desired holds the ODB's active connectors only: one not in it was deleted or made
        # inactive (before, both were said as "removed")
        why = "no longer active (deleted or made inactive)" if spec is None else "configuration changed"
        if pid is None or spec is None:
            logger.info("child %s: %s, stopping it", name, why)
        elif spec.kind in WAITS_FOR_OLD:
            logger.info(
                "child %s: %s, stopping pid %d (its messages wait in Redis; "
                "the new one starts once it has exited)", name, why, pid,
            )  # fmt: skip
        else:
            logger.info(
                "child %s: %s, stopping pid %d (it finishes what it runs, up to %.0f s) "
                "and starting the new one now", name, why, pid, self.policy.drain_timeout,
            )  # fmt: skip
        child.stop(self.policy.drain_timeout)
        self._retired.append(self.children.pop(name))

    def _old_alive(self, spec: ConnectorSpec) -> bool:
        """An old child of `spec`'s (its name, or the same definition renamed) is still live."""
        return any(c.state in LIVE and (c.name == spec.name or _same(c.spec, spec)) for c in self._retired)

    def restart(self, name: str) -> bool:
        """Stop one child and start it again once it has stopped (an operator's request).
        False if there is no such child."""
        child = self.children.get(name)
        if child is None:
            return False
        logger.info("child %s: restart requested", name)
        child.stop(self.policy.drain_timeout)
        self._restarting.add(name)
        return True

    def tick(self) -> bool:
        changed = False
        for child in list(self.children.values()) + self._retired:
            changed = child.tick() or changed
        for name in list(self._restarting):
            again = self.children.get(name)
            if again is None or again.state not in LIVE:
                self._restarting.discard(name)
                if again is not None and name not in self._after_old:  # else it starts below
                    again.start(again.env)
                    changed = True
        self._retired = [c for c in self._retired if c.state in LIVE]
        for name in list(self._after_old):
            new = self.children.get(name)
            if new is None:
                self._after_old.pop(name)
            elif not self._old_alive(new.spec):
                self._start(new, self._after_old.pop(name))
                changed = True
        return changed

    def stop_all(self, timeout: float, sleep=time.sleep) -> bool:  # noqa: ANN001
        """Stop every child: SIGTERM, SIGKILL whatever is left after `timeout`, reap.
        Returns True if all are gone. Forgets the children afterwards."""
        everyone = list(self.children.values()) + self._retired
        self._after_old.clear()
        self._renamed.clear()
        for child in everyone:
            child.stop()
        deadline = self.os.now() + timeout
        while any(c.state in LIVE for c in everyone):
            for c in everyone:
                c.tick()
                if self.os.now() >= deadline:
                    c.kill_now()
            if self.os.now() >= deadline + 1.0:
                break
            sleep(0.005)
        gone = all(c.state not in LIVE for c in everyone)
        self.children, self._retired = {}, [c for c in everyone if c.state in LIVE]
        return gone

    def snapshot(self) -> list[dict]:
        return [c.snapshot() for c in sorted(self.children.values(), key=lambda c: c.name)]

    @property
    def active(self) -> bool:
        return bool(self.children) or bool(self._retired)

    def runs(self, name: str) -> bool:
        """A connector of this name is desired here, or one retired has yet to exit."""
        return name in self.children or any(c.name == name and c.state in LIVE for c in self._retired)


def _same(a: ConnectorSpec, b: ConnectorSpec) -> bool:
    """The same definition (kind and ODB id), whatever its name."""
    ident = a.definition.get("id")
    return a.kind == b.kind and ident is not None and ident == b.definition.get("id")
