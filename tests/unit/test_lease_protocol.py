"""The lease protocol, checked exhaustively: Hypothesis drives three servers, each the real
`LeaseKeeper` over the in-memory port (`MemoryLease`, the same contract as Redis: see
tests/integration/test_lease_contract.py), on fake clocks, through random interleavings
of steps, time passing (pauses longer than the TTL), slow renewals, partitions and heals,
steps of a server's wall clock, and (each in its own test) Redis losing its data while the
ODB keeps the epoch floor, and the Redis host's wall clock stepping (Redis expires keys by
it). Each host has its own wall and monotonic clocks (`HostClock`), which the keepers read
through `time` as in production, so a keeper timing its hold on the wall clock fails here.
After every step:

- at most one server acts under a valid epoch, outside the window a data loss or a step
  forward of Redis's clock opens (less than renew_deadline; see `LeaseProtocol.overlap`),
  and never two under one epoch;
- epochs issued only rise, so none is issued twice, also after a data loss (the floor);
- the fencing gate accepts every action of a valid holder and none under an epoch older
  than one it accepted;
- a holder that cannot renew stops acting before anyone else can take the lease.

A failure prints the shortest interleaving Hypothesis found. `make check-protocol` runs many
more examples (ZATO_PROTOCOL_EXAMPLES)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zato.config.settings import LeaseSettings
from zato.coord import lease as lease_module
from zato.coord.health import RedisHealth
from zato.coord.lease import LeaseKeeper
from zato.coord.memory import MemoryCoord, MemoryFloor, MemoryLease

LEASE = LeaseSettings()  # the defaults a quickstart server runs with
SERVERS = 3
EXAMPLES = int(os.environ.get("ZATO_PROTOCOL_EXAMPLES", "60"))
WALL = 1_700_000_000.0  # where the wall clocks start (Unix time): far from any monotonic reading


class HostClock:
    """One host's clocks as its `time` module answers: the wall clock, which steps when told
    (NTP, an operator), and the monotonic clock, from its own origin, which never steps. Both run
    at the simulation's true rate (`sim.now`)."""

    def __init__(self, sim: LeaseProtocol, origin: float) -> None:
        self.sim = sim
        self.origin = origin
        self.wall_step = 0.0

    def monotonic(self) -> float:
        return self.origin + self.sim.now

    def time(self) -> float:
        return WALL + self.sim.now + self.wall_step


class Gate:
    """The fencing check a resource applies: refuse an epoch older than one it accepted."""

    def __init__(self) -> None:
        self.newest = 0
        self.log: list[tuple[str, int, bool]] = []

    def accept(self, server: str, epoch: int) -> bool:
        ok = epoch >= self.newest
        self.newest = max(self.newest, epoch)
        self.log.append((server, epoch, ok))
        return ok


class SlowLease(MemoryLease):
    """A renewal can take time: before Redis applies it and after, on the shared clock."""

    def __init__(self, sim: LeaseProtocol, *args: object) -> None:
        super().__init__(*args)
        self.sim = sim
        self.delay = (0.0, 0.0)

    def renew(self) -> None:
        before, after = self.delay
        self.delay = (0.0, 0.0)
        self.sim.now += before
        try:
            super().renew()
        finally:
            self.sim.now += after


class SimKeeper(LeaseKeeper):
    """The real keeper; only its sleeps (a wait, a pub/sub wait on Redis) are left to the
    simulation, which picks who runs next. Every decision is LeaseKeeper's own."""

    def __init__(self, sim: LeaseProtocol, lease: SlowLease) -> None:
        # Built as the supervisor builds it, without a clock: it takes `time.monotonic` from its
        # module, where the simulation put this server's HostClock (see LeaseProtocol.on).
        super().__init__(
            lease,
            RedisHealth(),
            lambda: False,
            self._wait,
            on_acquired=lambda epoch, gap: sim.issued(lease.server, epoch),
        )

    def _wait(self, seconds: float) -> None:
        """The simulation decides when a server runs next: a wait returns at once."""

    def _sleep_standby(self, until_expiry: float) -> None:
        """As _wait: no pub/sub here."""

    def step(self) -> None:
        if self._epoch is None:
            self._standby_step()
        else:
            self._holder_step()


class LeaseProtocol(RuleBasedStateMachine):
    data_loss = False  # Redis may lose its data; the ODB's epoch floor (MemoryFloor) then counts
    redis_clock = False  # the Redis host's wall clock may step

    @initialize()
    def start(self) -> None:
        self.now = 1000.0  # true time; every host reads it through its own clocks
        self.redis_host = HostClock(self, 0.0)
        self.coord = MemoryCoord(clock=self.redis_host.time)  # Redis expires keys by its wall clock
        self.gate = Gate()
        self.epochs: list[int] = []
        self.lost_at = -1e9
        self.redis_stepped_at = -1e9  # the last step forward of Redis's clock
        self.hosts = [HostClock(self, 37.0 + 10_000.0 * i) for i in range(SERVERS)]
        self.keepers = []
        floor = MemoryFloor() if self.data_loss else None
        for i in range(SERVERS):
            lease = SlowLease(self, self.coord, f"s{i}", LEASE, floor)
            lease_module.time = self.hosts[i]  # type: ignore[assignment]
            self.keepers.append(SimKeeper(self, lease))

    def on(self, i: int) -> SimKeeper:
        """Server i's code runs next: `time` in zato.coord.lease answers with its clocks."""
        lease_module.time = self.hosts[i]  # type: ignore[assignment]
        return self.keepers[i]

    def teardown(self) -> None:
        lease_module.time = time

    def issued(self, server: str, epoch: int) -> None:
        assert not self.epochs or epoch > self.epochs[-1], f"{server}: epoch {epoch} after {self.epochs}"
        self.epochs.append(epoch)

    # What can happen

    @rule(i=st.integers(0, SERVERS - 1))
    def step(self, i: int) -> None:
        """Server i runs its next step now (its wait over, or woken early as a release would)."""
        self.on(i).step()
        self.act(i)

    @rule(dt=st.sampled_from([0.01, 0.1, 0.3, 0.5, 1.0, 1.49, 1.51, 2.0, 5.0]))
    def time_passes(self, dt: float) -> None:
        """Nobody runs meanwhile: a pause of every process, or just quiet."""
        self.now += dt

    @rule(
        i=st.integers(0, SERVERS - 1),
        before=st.sampled_from([0.0, 0.2, 0.9, 1.2, 2.0]),
        after=st.sampled_from([0.0, 0.2, 0.9, 1.2, 2.0]),
    )
    def slow_renewal(self, i: int, before: float, after: float) -> None:
        """Server i's next renewal reaches Redis `before` s late and its answer `after` s late."""
        self.keepers[i].lease.delay = (before, after)

    @rule(i=st.integers(0, SERVERS - 1), cut=st.booleans())
    def partition(self, i: int, cut: bool) -> None:
        self.coord.partition(f"s{i}", cut)

    @precondition(lambda self: self.data_loss)
    @rule()
    def redis_loses_its_data(self) -> None:
        self.coord.lose_data()
        self.lost_at = self.now

    @rule(i=st.integers(0, SERVERS - 1), dt=st.sampled_from([-2.0, 2.0, -0.5, 0.5, -3600.0, 3600.0]))
    def server_clock_steps(self, i: int, dt: float) -> None:
        """Server i's wall clock steps. Its lease decisions read only the monotonic clock, so
        this changes nothing: every invariant holds as without it."""
        self.hosts[i].wall_step += dt

    @precondition(lambda self: self.redis_clock)
    @rule(dt=st.sampled_from([2.0, 0.3, 0.6, 1.2, 60.0, -0.3, -1.0, -60.0]))
    def redis_clock_steps(self, dt: float) -> None:
        """The Redis host's wall clock steps: forward, the lease key expires `dt` early (at
        once if its TTL left is shorter); back, it lives `dt` longer (a slower failover)."""
        self.redis_host.wall_step += dt
        if dt > 0:
            self.redis_stepped_at = self.now

    def overlap(self) -> bool:
        """Whether two servers may hold a valid epoch at once now (each a different one).

        After a data loss: the window it opens (see act). After a step forward of the Redis
        host's clock: the lease key can expire before its holder's renew deadline, so another
        server takes the lease (a newer epoch) while the old holder still believes in its hold.
        The old holder's last confirmed renewal started before the step, so it stops acting
        less than renew_deadline after it (sooner if it renews meanwhile: LeaseLost); until
        then the fencing gate refuses its epoch once the newer one acted. The product cannot
        do better cheaply: a holder cannot see Redis's clock (docs/internals.md, the lease)."""
        since = self.now - max(self.lost_at, self.redis_stepped_at)
        return since < LEASE.renew_deadline

    def act(self, i: int) -> None:
        """A server acts (its connectors do work) whenever its keeper says its epoch is valid."""
        epoch = self.on(i).valid_epoch()
        if epoch is None:
            return
        accepted = self.gate.accept(f"s{i}", epoch)
        # Just after a data loss or a step forward of Redis's clock the old holder may still
        # believe in its (older) epoch until its renewal fails or its deadline passes: only the
        # newest one issued must get through; the gate refuses the other.
        stale = self.data_loss or self.now - self.redis_stepped_at < LEASE.renew_deadline
        newest = not stale or epoch == max(self.epochs)
        if newest and self.now - self.lost_at >= LEASE.renew_deadline:
            assert accepted, f"s{i} acted under valid epoch {epoch}, refused: {self.gate.log[-5:]}"

    # What must always hold

    @invariant()
    def at_most_one_acting(self) -> None:
        if not hasattr(self, "keepers"):
            return
        acting = [(f"s{i}", e) for i in range(SERVERS) if (e := self.on(i).valid_epoch())]
        if len(acting) > 1:
            assert self.overlap(), f"two act at {self.now}: {acting}"
            assert len({e for _, e in acting}) == len(acting), f"two act under one epoch: {acting}"

    @invariant()
    def accepted_epochs_never_go_back(self) -> None:
        if not hasattr(self, "gate"):
            return
        newest = 0
        for server, epoch, ok in self.gate.log:
            if ok:
                assert epoch >= newest, f"{server} accepted under {epoch} after {newest}"
                newest = epoch


class LeaseProtocolWithDataLoss(LeaseProtocol):
    data_loss = True


class LeaseProtocolWithRedisClockSteps(LeaseProtocol):
    redis_clock = True


FAST = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

TestLeaseProtocol = LeaseProtocol.TestCase
TestLeaseProtocol.settings = FAST
TestLeaseProtocolWithDataLoss = LeaseProtocolWithDataLoss.TestCase
TestLeaseProtocolWithDataLoss.settings = FAST
TestLeaseProtocolWithRedisClockSteps = LeaseProtocolWithRedisClockSteps.TestCase
TestLeaseProtocolWithRedisClockSteps.settings = FAST


def _acquire(lease: MemoryLease) -> int | None:
    attempt = lease.try_acquire()
    return attempt.epoch if attempt.acquired else None


@pytest.mark.parametrize("durable", [False, True])
def test_after_a_data_loss_an_epoch_is_issued_twice_only_without_the_floor(durable: bool) -> None:
    """s0 takes epoch 1, Redis loses its data before s1 ever saw it: on Redis alone, s1 gets
    epoch 1 again (two holders under one epoch: the fencing gate cannot tell them apart).
    With the ODB's floor, s1 starts above the floor (2); and an epoch that slipped under it
    anyway (read before another's claim) is refused: given back, the next attempt is above."""
    now = [1000.0]
    coord = MemoryCoord(clock=lambda: now[0])
    floor = MemoryFloor() if durable else None
    s0, s1, s2 = (MemoryLease(coord, name, LEASE, floor) for name in ("s0", "s1", "s2"))
    assert _acquire(s0) == 1
    coord.lose_data()
    if not durable:
        assert _acquire(s1) == 1  # the limit the floor removes
        return
    assert floor is not None
    assert _acquire(s1) == 2
    coord.lose_data()

    class ReadTooEarly(MemoryFloor):
        """The first read answers 2: another server's claim of 3 landed just after it."""

        early = True

        def read(self) -> int:
            if self.early:
                self.early = False
                return 2
            return self.value

    s2.floor = shared = ReadTooEarly(3)
    assert _acquire(s2) is None and not coord.token  # Redis answered 3: refused, given back
    assert _acquire(s2) == 4 and shared.read() == 4


@contextlib.contextmanager
def simulation(machine: type[LeaseProtocol]) -> Iterator[LeaseProtocol]:
    """One run of `machine` driven by hand, its fake clocks put back afterwards."""
    sim = machine()
    try:
        sim.start()
        yield sim
    finally:
        sim.teardown()


def cut_off_until_its_deadline(sim: LeaseProtocol, i: int, epoch: int) -> None:
    """Server i, whose last renewal was confirmed just now, is cut off from Redis: it keeps
    acting under `epoch` until its renew deadline on the monotonic clock, and not after."""
    sim.partition(i, True)
    sim.time_passes(LEASE.renew_deadline - 0.01)
    sim.step(i)  # the renewal fails: Redis cannot be reached
    assert sim.on(i).valid_epoch() == epoch
    sim.time_passes(0.01)
    assert sim.on(i).valid_epoch() is None


@pytest.mark.parametrize("dt", [-3600.0, 3600.0])
def test_a_step_of_the_holders_wall_clock_changes_nothing(dt: float) -> None:
    """A case the machine above finds only with more examples, always run: the holder's wall
    clock steps an hour between two renewals. It keeps its hold and, cut off from Redis, stops
    at its renew deadline on the monotonic clock, before s1 takes over (a keeper on the wall
    clock would step down at once, or hold on for an hour)."""
    with simulation(LeaseProtocol) as sim:
        sim.step(0)
        for _ in range(2):
            sim.time_passes(0.5)
            sim.step(0)
        sim.server_clock_steps(0, dt)
        assert sim.on(0).valid_epoch() == 1
        cut_off_until_its_deadline(sim, 0, 1)
        sim.time_passes(0.51)  # the key outlives the deadline by ttl - renew_deadline
        sim.step(1)
        assert sim.on(1).valid_epoch() == 2
        sim.at_most_one_acting()


def test_a_step_forward_of_the_redis_clock_lets_two_act_and_the_gate_refuses_the_older() -> None:
    """The limit LeaseProtocolWithRedisClockSteps allows (Hypothesis's shortest interleaving):
    s1 holds epoch 1, Redis's clock steps 2 s forward, the key expires and s0 takes epoch 2
    while s1 still believes in its hold. Only epoch 2 gets through the gate, and s1 stops at
    its next renewal (LeaseLost), or, cut off, renew_deadline after the step."""
    with simulation(LeaseProtocolWithRedisClockSteps) as sim:
        sim.step(1)
        sim.redis_clock_steps(2.0)
        sim.step(0)
        assert (sim.on(0).valid_epoch(), sim.on(1).valid_epoch()) == (2, 1)
        assert sim.gate.log == [("s1", 1, True), ("s0", 2, True)]
        sim.act(1)
        assert sim.gate.log[-1] == ("s1", 1, False)
        cut_off_until_its_deadline(sim, 1, 1)
        sim.at_most_one_acting()
        sim.accepted_epochs_never_go_back()


def test_after_a_step_forward_of_the_redis_clock_the_old_holder_stops_at_its_next_renewal() -> None:
    """Not cut off, the old holder learns at its next renewal that the key is someone else's."""
    with simulation(LeaseProtocolWithRedisClockSteps) as sim:
        sim.step(1)
        sim.redis_clock_steps(2.0)
        sim.step(0)
        sim.time_passes(LEASE.renew_interval)
        sim.step(1)
        assert (sim.on(0).valid_epoch(), sim.on(1).valid_epoch()) == (2, None)
