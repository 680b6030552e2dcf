"""The holder's step-down (zato.connector.stepdown): SIGKILL is timed from the renew deadline,
however late the main loop began, and the line it logs says how much of the room was left."""

from __future__ import annotations

import logging

import pytest

from zato.connector.stepdown import stepped_down, stop_grace

STOP = 0.3  # the default policy's stop_timeout: 0.6 of the default room (ttl 1.5 - deadline 1.0)


@pytest.mark.parametrize(
    ("late", "grace"),
    [(0.0, 0.3), (0.02, 0.28), (0.2, 0.1), (0.3, 0.0), (0.9, 0.0)],
)
def test_a_late_step_down_gets_less_grace_so_sigkill_comes_at_the_same_moment(
    late: float, grace: float
) -> None:
    deadline = 100.0
    assert stop_grace(deadline + late, deadline, STOP) == pytest.approx(grace)
    # the SIGKILL moment: deadline + stop_timeout, or the start itself once that is past
    assert deadline + late + stop_grace(deadline + late, deadline, STOP) == pytest.approx(
        max(deadline + STOP, deadline + late)
    )


def test_a_hand_over_before_its_deadline_gets_the_whole_stop_timeout() -> None:
    assert stop_grace(100.0, 100.8, STOP) == STOP


def test_a_step_down_within_the_room_says_what_was_left() -> None:
    level, line = stepped_down(7, 3, 0.32, 0.17, True)
    assert level == logging.WARNING
    head = "stepped down from lease epoch 7: 3 children stopped in 0.32 s"
    assert line == f"{head}, 0.17 s before its last renewal ran out"


def test_a_step_down_past_the_room_is_an_error_naming_the_settings() -> None:
    level, line = stepped_down(7, 2, 0.61, -0.04, False)
    assert level == logging.ERROR
    assert line.startswith(
        "stepped down from lease epoch 7: 2 children stopped in 0.61 s, 0.04 s after its last renewal ran out"
        " (some children did not exit even after SIGKILL): another server may have started these connectors"
    )
    assert "[lease] renew_deadline and ttl" in line
