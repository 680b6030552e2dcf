"""The server's epoch check as an injected gate: stale refused, current and newer accepted,
and an unreadable epoch is the caller's error (503), never an acceptance."""

from __future__ import annotations

import pytest

from zato.common.errors import CoordUnavailable
from zato.server.epoch_gate import EpochGate


def test_an_action_under_an_older_epoch_is_refused_and_names_the_newest():
    newest = [5]
    gate = EpochGate(lambda: newest[0])
    assert gate.check(5).accepted and gate.check(6).accepted
    verdict = gate.check(4)
    assert not verdict.accepted and verdict.newest == 5
    newest[0] = 6  # a takeover
    assert not gate.check(5).accepted


def test_an_unreadable_epoch_is_not_an_acceptance():
    def unreadable() -> int:
        raise CoordUnavailable("Redis down")

    with pytest.raises(CoordUnavailable):
        EpochGate(unreadable).check(9)
