"""The dashboard's guard against running one action twice at once (a double click on Replay
parked): pure logic, a fake clock."""

from __future__ import annotations

import pytest

from zato.dashboard.actions import ActionConflict, Running


def test_one_action_of_a_name_at_a_time_others_go_on_and_an_error_releases_it():
    now = [100.0]
    running = Running(clock=lambda: now[0])
    with running.only_one("replay parked amqp-channel orders"):
        now[0] += 12.4
        again = running.only_one("replay parked amqp-channel orders")
        said = r"^already running \(started 12 s ago\): try again"
        with pytest.raises(ActionConflict, match=said) as e, again:
            pass
        assert e.value.status == 409
        with running.only_one("replay parked amqp-channel other"):  # another channel is not held up
            pass
    with pytest.raises(RuntimeError), running.only_one("replay parked amqp-channel orders"):
        raise RuntimeError("the replay failed")
    with running.only_one("replay parked amqp-channel orders"):  # neither an end nor a failure holds it
        pass
