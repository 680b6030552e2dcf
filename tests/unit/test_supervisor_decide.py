"""The connector supervisor's holder/standby decisions (zato.connector.decide), without
sockets, threads or a clock: observations in, actions out."""

from __future__ import annotations

from zato.connector.decide import (
    Decider,
    NoSuchConnector,
    Observations,
    Reconcile,
    Restart,
    StartActing,
    StepDown,
    Stop,
    TickZygote,
)

PARENT = 4242
EVERY = 0.2


def decider() -> Decider:
    return Decider(PARENT, EVERY)


def seen(**kwargs) -> Observations:  # noqa: ANN003
    return Observations(**kwargs)


def holder(epoch: int = 7, version: int = 1, names: frozenset[str] = frozenset({"amqp:a"})) -> Decider:
    """A Decider that has started acting under `epoch` and, after the read of the definitions
    that began then, applied `version`."""
    d = decider()
    assert d.step(0.0, seen(valid_epoch=epoch, desired_version=version, desired_names=names)) == [
        TickZygote(),
        StartActing(epoch),
    ]
    read = seen(valid_epoch=epoch, desired_version=version, desired_names=names,
                reads_started=1, reads_ended=1)  # fmt: skip
    assert d.step(0.01, read) == [Reconcile(version, epoch)]
    return d


def without_ticks(actions: list) -> list:
    return [a for a in actions if not isinstance(a, TickZygote)]


def test_becoming_holder_starts_acting_and_reconciles_then_waits():
    d = holder(epoch=7, version=3)
    assert d.acting_epoch == 7
    same = seen(valid_epoch=7, desired_version=3, children=frozenset({"amqp:a"}))
    assert d.step(0.02, same) == []  # nothing new: no action, and no zygote tick before 0.2 s
    assert d.step(0.2, same) == [TickZygote()]


def test_a_standby_never_reconciles_nor_restarts():
    d = decider()
    assert d.step(0.0, seen(desired_version=5, desired_names=frozenset({"amqp:a"}))) == [TickZygote()]
    for version in (6, 7):
        assert d.step(0.01 * version, seen(desired_version=version, restart_requests=("amqp:a",))) == []
    assert d.acting_epoch is None


def test_losing_the_epoch_steps_down_before_anything_else():
    d = holder(epoch=7)
    # the same tick brings a new desired version and a restart request: neither is acted on
    lost = seen(desired_version=2, desired_names=frozenset({"amqp:b"}), children=frozenset({"amqp:a"}),
                restart_requests=("amqp:a",))  # fmt: skip
    assert d.step(0.2, lost) == [TickZygote(), StepDown(7)]
    assert d.acting_epoch is None
    assert d.step(0.21, lost) == []  # stepped down once


def test_a_changed_epoch_steps_down_then_acts_anew_and_applies_everything_again():
    d = holder(epoch=7, version=1)
    names = frozenset({"amqp:a"})
    actions = d.step(0.05, seen(valid_epoch=9, desired_version=1, desired_names=names, children=names,
                                reads_started=1, reads_ended=1))  # fmt: skip
    assert actions == [StepDown(7), StartActing(9)]
    assert d.acting_epoch == 9
    read = seen(valid_epoch=9, desired_version=1, desired_names=names, reads_started=2, reads_ended=2)
    assert d.step(0.06, read) == [Reconcile(1, 9)]  # same version, new epoch: applied again


def test_a_new_desired_version_while_acting_is_reconciled_once():
    d = holder(epoch=7, version=1)
    names = frozenset({"amqp:a", "zmq:b"})
    newer = seen(valid_epoch=7, desired_version=2, desired_names=names, children=frozenset({"amqp:a"}))
    assert d.step(0.05, newer) == [Reconcile(2, 7)]
    assert d.step(0.06, newer) == []
    assert d.step(0.07, seen(valid_epoch=7, desired_version=3, desired_names=names)) == [Reconcile(3, 7)]


def test_desired_version_zero_applies_nothing():
    d = decider()
    assert d.step(0.0, seen(valid_epoch=7, desired_version=0)) == [TickZygote(), StartActing(7)]
    assert d.step(0.05, seen(valid_epoch=7, desired_version=0)) == []
    first = seen(valid_epoch=7, desired_version=1, reads_started=1, reads_ended=1)
    assert d.step(0.1, first) == [Reconcile(1, 7)]  # the first read


def test_restart_requests_are_carried_out_only_while_acting():
    d = holder(epoch=7)
    running = frozenset({"amqp:a"})
    asked = seen(valid_epoch=7, desired_version=1, children=running, restart_requests=("amqp:a", "amqp:x"))
    assert d.step(0.05, asked) == [Restart("amqp:a"), NoSuchConnector("amqp:x")]


def test_a_restart_sees_the_children_after_this_ticks_reconcile():
    d = holder(epoch=7, version=1)
    # version 2 adds zmq:b and drops amqp:a: the restart requests of the same tick see that set
    changed = seen(valid_epoch=7, desired_version=2, desired_names=frozenset({"zmq:b"}),
                   children=frozenset({"amqp:a"}), restart_requests=("zmq:b", "amqp:a"))  # fmt: skip
    assert d.step(0.05, changed) == [Reconcile(2, 7), Restart("zmq:b"), NoSuchConnector("amqp:a")]


def test_a_restart_right_after_becoming_holder_with_nothing_applied_finds_no_connector():
    d = decider()
    assert d.step(0.0, seen(valid_epoch=7, restart_requests=("amqp:a",))) == [
        TickZygote(),
        StartActing(7),
        NoSuchConnector("amqp:a"),
    ]


def test_a_gone_parent_stops_at_the_next_check_and_nothing_else_happens():
    d = holder(epoch=7)
    orphan = seen(parent_alive=False, valid_epoch=None, restart_requests=("amqp:a",))
    assert d.step(0.1, seen(parent_alive=False, valid_epoch=7, desired_version=1)) == []  # not due yet
    assert d.step(0.2, orphan) == [Stop(f"parent process {PARENT} is gone")]
    assert d.acting_epoch == 7  # the shutdown stops the children, not a step-down


def test_a_stop_asked_for_elsewhere_ends_the_loop_before_any_check():
    d = holder(epoch=7)
    assert d.step(5.0, seen(stop_requested=True, parent_alive=False, valid_epoch=9)) == [Stop(None)]
    assert d.acting_epoch == 7


def test_a_new_holder_starts_nothing_from_a_set_read_before_it_took_the_lease():
    """A supervisor cut off for a while holds definitions read back then: a channel deleted
    meanwhile must not consume again after it takes over (seen in tests/hosts: 22 s of it)."""
    d = decider()
    names = frozenset({"amqp:deleted-meanwhile"})
    old = seen(valid_epoch=7, desired_version=4, desired_names=names, reads_started=3, reads_ended=3)
    assert d.step(0.0, old) == [TickZygote(), StartActing(7)]
    reading = seen(valid_epoch=7, desired_version=4, desired_names=names, reads_started=4, reads_ended=3)
    assert without_ticks(d.step(0.02, reading)) == []
    fresh = seen(valid_epoch=7, desired_version=5, desired_names=frozenset(), reads_started=4, reads_ended=4)
    assert without_ticks(d.step(0.04, fresh)) == [Reconcile(5, 7)]


def test_a_read_that_began_before_the_lease_was_taken_does_not_count_as_fresh():
    d = decider()
    assert d.step(0.0, seen(valid_epoch=7, desired_version=4, reads_started=3, reads_ended=2)) == [
        TickZygote(),
        StartActing(7),
    ]
    began_before = seen(valid_epoch=7, desired_version=4, reads_started=3, reads_ended=3)
    assert without_ticks(d.step(0.02, began_before)) == []
    after = seen(valid_epoch=7, desired_version=4, reads_started=4, reads_ended=4)
    assert without_ticks(d.step(0.04, after)) == [Reconcile(4, 7)]


def test_a_fresh_read_that_failed_applies_the_set_as_known():
    """The ODB refused (a read ended, the version did not move): the known set runs, as before."""
    d = decider()
    known = seen(valid_epoch=7, desired_version=4, reads_started=3, reads_ended=3)
    assert d.step(0.0, known)[-1] == StartActing(7)
    failed = seen(valid_epoch=7, desired_version=4, reads_started=4, reads_ended=4)
    assert without_ticks(d.step(0.02, failed)) == [Reconcile(4, 7)]


def test_when_no_read_ends_the_set_as_known_is_applied_after_fresh_wait_and_marked_stale():
    d = Decider(PARENT, EVERY, fresh_wait=5.0)
    hung = seen(valid_epoch=7, desired_version=4, reads_started=4, reads_ended=3)
    assert d.step(0.0, hung)[-1] == StartActing(7)
    assert without_ticks(d.step(4.99, hung)) == []
    assert without_ticks(d.step(5.0, hung)) == [Reconcile(4, 7, stale=True)]
    assert without_ticks(d.step(5.02, hung)) == []  # applied once
    newer = seen(valid_epoch=7, desired_version=5, reads_started=4, reads_ended=4)
    assert without_ticks(d.step(5.04, newer)) == [Reconcile(5, 7)]  # then every new version at once
