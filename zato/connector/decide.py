"""The connector supervisor's decisions as a pure state machine: holder or standby, what to run.

`Decider.step(now, seen)` takes what the supervisor's main loop observed this tick (plain
values in `Observations`) and returns the actions to take, in order. It does no I/O, reads no
clock and holds no lock; the main loop (`zato.connector.supervisor.Supervisor`) gathers the
observations, calls `step` and executes the actions. Unit-tested in
tests/unit/test_supervisor_decide.py.

The rules, in the order they apply:

1. A stop asked for elsewhere (a signal, a crashed thread) ends the loop at once.
2. Every `parent_check_every` seconds: a parent that is gone ends the loop; otherwise the
   zygote gets its tick.
3. Acting under an epoch the lease keeper no longer vouches for (none, or another one): step
   down first, before anything else is started or restarted.
4. A valid epoch while not acting: start acting under it; everything desired is applied anew,
   but only from a read of the definitions that began after acting did (the main loop wakes
   the desired thread at once). A supervisor that was cut off may hold a set that is minutes
   old: started from it, a channel deleted meanwhile would consume and invoke again. A read
   that fails also counts (the last known set is then applied, as ever); one that has not ended
   within `fresh_wait` seconds (a hung ODB connection) is given up on, with the set as known.
5. While acting: each new version of the desired connectors is reconciled once. Version 0
   means the definitions were never read, so nothing is applied.
6. Restart requests are carried out only while acting; a name that is not running here is
   reported. A standby drops them (the holder's supervisor gets the same event).
"""

from __future__ import annotations

from dataclasses import dataclass

NEVER_APPLIED = -1
FRESH_WAIT = 30.0  # seconds a new holder waits for a fresh read of the definitions, at most


@dataclass(frozen=True)
class Observations:
    """What the main loop saw this tick."""

    stop_requested: bool = False  # the stop event is set (signal, crashed thread)
    parent_alive: bool = True  # the process that started the supervisor is still its parent
    valid_epoch: int | None = None  # LeaseKeeper.valid_epoch(): None unless a confirmed holder
    desired_version: int = 0  # bumped by the desired thread on every change; 0: never read
    desired_names: frozenset[str] = frozenset()  # the connectors of that version
    reads_started: int = 0  # reads of the definitions the desired thread began (1, 2, 3...)
    reads_ended: int = 0  # the number of the last read that ended, read or failed
    children: frozenset[str] = frozenset()  # the connectors the manager runs now
    restart_requests: tuple[str, ...] = ()  # taken off the queue this tick, oldest first


@dataclass(frozen=True)
class Stop:
    """Leave the main loop; `reason` is logged, None if it was logged where the stop was asked."""

    reason: str | None = None


@dataclass(frozen=True)
class TickZygote:
    """Let the zygote notice its own death, start when due and read its news."""


@dataclass(frozen=True)
class StepDown:
    """Stop every child: `epoch` is no longer held."""

    epoch: int


@dataclass(frozen=True)
class StartActing:
    """Become the connector server under `epoch` (membership says holder at once)."""

    epoch: int


@dataclass(frozen=True)
class Reconcile:
    """Run exactly the desired connectors of `version`, started under `epoch`. stale: the first
    set of a new holder, applied without a read that began after it started acting (rule 4)."""

    version: int
    epoch: int
    stale: bool = False


@dataclass(frozen=True)
class Restart:
    """Stop the connector `name` and start it again once stopped (an operator's request)."""

    name: str


@dataclass(frozen=True)
class NoSuchConnector:
    """A restart was asked for `name`, which is not running here."""

    name: str


Action = Stop | TickZygote | StepDown | StartActing | Reconcile | Restart | NoSuchConnector


class Decider:
    """The holder/standby state machine of one supervisor. State: the epoch it acts under, the
    desired version it applied under that epoch, and when the parent is next checked."""

    def __init__(self, parent: int, parent_check_every: float, fresh_wait: float = FRESH_WAIT):
        self.parent = parent
        self.parent_check_every = parent_check_every
        self.fresh_wait = fresh_wait
        self.next_parent_check = 0.0
        self.acting_epoch: int | None = None
        self.applied_version = NEVER_APPLIED
        self.fresh_after = 0  # reads numbered above this began after acting did
        self.fresh_until = 0.0  # then the set as known is applied even without such a read

    def step(self, now: float, seen: Observations) -> list[Action]:
        if seen.stop_requested:
            return [Stop()]
        actions: list[Action] = []
        if now >= self.next_parent_check:
            self.next_parent_check = now + self.parent_check_every
            if not seen.parent_alive:
                return [Stop(f"parent process {self.parent} is gone")]
            actions.append(TickZygote())
        children = seen.children
        if self.acting_epoch is not None and seen.valid_epoch != self.acting_epoch:
            actions.append(StepDown(self.acting_epoch))
            self.acting_epoch, children = None, frozenset()
        if seen.valid_epoch is not None and self.acting_epoch is None:
            actions.append(StartActing(seen.valid_epoch))
            self.acting_epoch, self.applied_version = seen.valid_epoch, NEVER_APPLIED
            self.fresh_after, self.fresh_until = seen.reads_started, now + self.fresh_wait
        if self.acting_epoch is not None and seen.desired_version not in (self.applied_version, 0):
            fresh = self.applied_version != NEVER_APPLIED or seen.reads_ended > self.fresh_after
            if fresh or now >= self.fresh_until:
                actions.append(Reconcile(seen.desired_version, self.acting_epoch, stale=not fresh))
                self.applied_version, children = seen.desired_version, seen.desired_names
        if self.acting_epoch is not None:
            actions.extend(Restart(n) if n in children else NoSuchConnector(n) for n in seen.restart_requests)
        return actions
