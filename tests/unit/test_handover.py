"""A holder whose connector cannot reach its broker hands the lease over (zato.connector.handover):
when it is due, on a fake monotonic clock, and how the lease keeper lets go (no Redis)."""

from __future__ import annotations

from tests.unit.test_lease_keeper import keeper_holding
from zato.connector.handover import Stuck
from zato.coord.lease import Attempt


def test_one_connector_reconnecting_for_the_whole_wait_makes_the_hand_over_due() -> None:
    stuck = Stuck(after=10.0)
    assert stuck.observe(0.0, {"amqp-channel:in": "reconnecting", "amqp-outgoing:out": "running"}) is None
    assert stuck.observe(9.9, {"amqp-channel:in": "reconnecting", "amqp-outgoing:out": "running"}) is None
    assert stuck.observe(10.0, {"amqp-channel:in": "reconnecting", "amqp-outgoing:out": "running"}) == (
        "amqp-channel:in",
        10.0,
    )


def test_a_connector_that_connected_in_between_starts_its_wait_again() -> None:
    stuck = Stuck(after=10.0)
    stuck.observe(0.0, {"a": "reconnecting"})
    stuck.observe(6.0, {"a": "running"})
    assert stuck.observe(12.0, {"a": "reconnecting"}) is None
    assert stuck.observe(21.9, {"a": "reconnecting"}) is None
    assert stuck.observe(22.0, {"a": "reconnecting"}) == ("a", 10.0)


def test_stats_that_are_gone_or_another_state_are_not_reconnecting() -> None:
    stuck = Stuck(after=1.0)
    stuck.observe(0.0, {"a": None, "b": "blocked", "c": "refused"})
    assert stuck.observe(5.0, {"a": None, "b": "blocked", "c": "refused"}) is None


class ReleasingLease:
    def __init__(self, lease) -> None:
        self.inner, self.released = lease, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def release(self) -> bool:
        self.released += 1
        return True


def test_a_hand_over_stops_acting_at_once_and_releases_once_the_connectors_stopped() -> None:
    keeper, lease, clock = keeper_holding(epoch=4)
    keeper.lease = wrapped = ReleasingLease(lease)
    assert keeper.hand_over()
    assert keeper.valid_epoch() is None  # the supervisor steps down on its next tick
    keeper._holder_step()  # still renewing while the connectors stop: nobody else acts yet
    assert wrapped.released == 0 and lease.renewals == 1
    keeper.release_now()
    keeper._holder_step()
    assert wrapped.released == 1 and keeper._epoch is None and not keeper.handing_over


def test_release_now_without_a_hand_over_releases_nothing_later() -> None:
    keeper, lease, _ = keeper_holding(epoch=4)
    keeper.lease = wrapped = ReleasingLease(lease)
    keeper.release_now()  # a step-down of another kind (a missed renewal)
    keeper._holder_step()
    assert wrapped.released == 0 and keeper.valid_epoch() == 4


class FreeLease:
    """A lease nobody holds: each try_acquire wins."""

    def __init__(self, keeper_lease) -> None:
        self.settings, self.tries = keeper_lease.settings, 0

    def remaining_ms(self, with_epoch: bool = True) -> int:
        return -2

    def try_acquire(self) -> Attempt:
        self.tries += 1
        return Attempt(True, 9, 1500)


def test_a_standby_that_handed_over_lets_the_others_take_a_free_lease_for_its_ttl() -> None:
    keeper, lease, clock = keeper_holding(epoch=4)
    keeper._epoch = None
    keeper.lease = free = FreeLease(lease)
    keeper.yields = lambda: True
    keeper._standby_step()
    clock.t = 1.4
    keeper._standby_step()
    assert free.tries == 0  # the lease's TTL (1.5 s) for the others
    clock.t = 1.5
    keeper._standby_step()
    assert free.tries == 1 and keeper.valid_epoch() == 9  # nobody took it: this one does
