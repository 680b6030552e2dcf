"""What the lease holder does with a recorded rename of an outgoing connection
(zato.connector.renames): pure steps, no Redis."""

from __future__ import annotations

from zato.connector.renames import RENAME_WATCH, Pending, Step, Watched, step


def test_moves_only_once_no_connector_of_the_old_name_runs_here():
    p = Pending("amqp-outgoing", "old", "new", in_use=False)
    assert step(p, old_runs=True) is Step.WAIT  # it publishes its processing list: not twice at once
    assert step(p, old_runs=False) is Step.MOVE


def test_forgets_an_old_name_used_again_or_a_connection_deleted_without_moving():
    assert step(Pending("amqp-outgoing", "old", "new", in_use=True), old_runs=False) is Step.FORGET
    assert step(Pending("amqp-outgoing", "old", None, in_use=False), old_runs=False) is Step.FORGET
    assert step(Pending("ibm-mq-outgoing", "old", "old", in_use=True), old_runs=True) is Step.FORGET


def test_a_rename_is_watched_for_a_while_from_when_this_holder_first_saw_it():
    p, watched = Pending("amqp-outgoing", "old", "new", in_use=False), Watched()
    assert not watched.long_enough(p, 100.0)
    assert not watched.long_enough(p, 100.0 + RENAME_WATCH - 1)
    assert watched.long_enough(p, 100.0 + RENAME_WATCH)
    watched.only([])  # no longer recorded: seen again, watched again
    assert not watched.long_enough(p, 100.0 + RENAME_WATCH)
