"""The lease protocol, checked exhaustively: Hypothesis drives three servers, each the real
`LeaseKeeper` over the in-memory port (`MemoryLease`, the same contract as Redis: see
tests/integration/test_lease_contract.py), on one fake clock, through random interleavings
of steps, time passing (pauses longer than the TTL), slow renewals, partitions and heals,
and (in its own test) Redis losing its data while the ODB keeps the epoch floor. After every
step:

- at most one server acts under a valid epoch (outside the window a data loss opens);
- epochs issued only rise, so none is issued twice, also after a data loss (the floor);
- the fencing gate accepts every action of a valid holder and none under an epoch older
  than one it accepted;
- a holder that cannot renew stops acting before anyone else can take the lease.

A failure prints the shortest interleaving Hypothesis found. `make check-protocol` runs many
more examples (ZATO_PROTOCOL_EXAMPLES)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zato.config.settings import LeaseSettings
from zato.coord.lease import LeaseKeeper, RedisHealth
from zato.coord.memory import MemoryCoord, MemoryFloor, MemoryLease

LEASE = LeaseSettings()  # the defaults a quickstart server runs with
SERVERS = 3
EXAMPLES = int(os.environ.get("ZATO_PROTOCOL_EXAMPLES", "60"))


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
        super().__init__(lease, RedisHealth(), lambda: False, self._wait, clock=sim.clock,
                         on_acquired=lambda epoch, gap: sim.issued(lease.server, epoch))

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

    @initialize()
    def start(self) -> None:
        self.now = 1000.0
        self.coord = MemoryCoord(clock=self.clock)
        self.gate = Gate()
        self.epochs: list[int] = []
        self.lost_at = -1e9
        self.keepers = []
        floor = MemoryFloor() if self.data_loss else None
        for i in range(SERVERS):
            lease = SlowLease(self, self.coord, f"s{i}", LEASE, floor)
            self.keepers.append(SimKeeper(self, lease))

    def clock(self) -> float:
        return self.now

    def issued(self, server: str, epoch: int) -> None:
        assert not self.epochs or epoch > self.epochs[-1], f"{server}: epoch {epoch} after {self.epochs}"
        self.epochs.append(epoch)

    # What can happen

    @rule(i=st.integers(0, SERVERS - 1))
    def step(self, i: int) -> None:
        """Server i runs its next step now (its wait over, or woken early as a release would)."""
        self.keepers[i].step()
        self.act(i)

    @rule(dt=st.sampled_from([0.01, 0.1, 0.3, 0.5, 1.0, 1.49, 1.51, 2.0, 5.0]))
    def time_passes(self, dt: float) -> None:
        """Nobody runs meanwhile: a pause of every process, or just quiet."""
        self.now += dt

    @rule(i=st.integers(0, SERVERS - 1), before=st.sampled_from([0.0, 0.2, 0.9, 1.2, 2.0]),
          after=st.sampled_from([0.0, 0.2, 0.9, 1.2, 2.0]))
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

    def act(self, i: int) -> None:
        """A server acts (its connectors do work) whenever its keeper says its epoch is valid."""
        epoch = self.keepers[i].valid_epoch()
        if epoch is None:
            return
        accepted = self.gate.accept(f"s{i}", epoch)
        # Just after a data loss the old holder may still believe in its (older) epoch until its
        # renewal fails: only the newest one issued must get through; the gate refuses the other.
        newest = not self.data_loss or epoch == max(self.epochs)
        if newest and self.now - self.lost_at >= LEASE.renew_deadline:
            assert accepted, f"s{i} acted under valid epoch {epoch}, refused: {self.gate.log[-5:]}"

    # What must always hold

    @invariant()
    def at_most_one_acting(self) -> None:
        if not hasattr(self, "keepers"):
            return
        acting = [(f"s{i}", k.valid_epoch()) for i, k in enumerate(self.keepers) if k.valid_epoch()]
        if len(acting) > 1:
            assert self.now - self.lost_at < LEASE.renew_deadline, f"two act at {self.now}: {acting}"

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


FAST = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

TestLeaseProtocol = LeaseProtocol.TestCase
TestLeaseProtocol.settings = FAST
TestLeaseProtocolWithDataLoss = LeaseProtocolWithDataLoss.TestCase
TestLeaseProtocolWithDataLoss.settings = FAST


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
