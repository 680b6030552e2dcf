"""The server's epoch check as an injected gate: stale refused, current and newer accepted,
an unreadable epoch is the caller's error (503), never an acceptance, and concurrent checks
share reads without ever relying on one sent before they arrived."""

from __future__ import annotations

import itertools
import threading
import time

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


def test_concurrent_checks_share_reads_yet_each_relies_on_a_read_sent_after_it_arrived():
    # The fake's "epoch" is the tick at which the read was sent: a check that arrived at tick
    # t may only be answered with a larger one, or a takeover between an older read and its
    # arrival could let a stale action through.
    ticks, lock, sent = itertools.count(1), threading.Lock(), []

    def newest() -> int:
        with lock:
            tick = next(ticks)
        sent.append(tick)
        time.sleep(0.002)  # a round trip, during which other checks arrive
        return tick

    gate, early, checks = EpochGate(newest), [], 16 * 40

    def actions() -> None:
        for _ in range(40):
            with lock:
                arrived = next(ticks)
            answer = gate.newest()
            if answer <= arrived:
                early.append((arrived, answer))

    threads = [threading.Thread(target=actions) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert early == []
    assert len(sent) < checks / 3  # shared: one Redis GET for many actions


def test_checks_one_after_another_each_read_the_epoch():
    reads = []
    gate = EpochGate(lambda: reads.append(1) or 7)
    assert [gate.check(7).accepted for _ in range(5)] == [True] * 5
    assert len(reads) == 5


def test_a_failed_shared_read_fails_every_check_that_joined_it_and_the_next_read_again():
    started, release, calls = threading.Event(), threading.Event(), []

    def newest() -> int:
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(5)
            raise CoordUnavailable("Redis down")
        return 3

    gate, outcomes = EpochGate(newest), []

    def check() -> None:
        try:
            outcomes.append(gate.check(3).accepted)
        except CoordUnavailable as e:
            outcomes.append(str(e))

    first = threading.Thread(target=check)
    first.start()
    started.wait(5)
    later = [threading.Thread(target=check) for _ in range(3)]  # join the read after the first
    for t in later:
        t.start()
    release.set()
    for t in [first, *later]:
        t.join(5)
    assert outcomes.count("Redis down") == 1 and outcomes.count(True) == 3
    assert len(calls) == 2  # the three that came later shared one read, sent after theirs
    assert gate.check(3).accepted and len(calls) == 3
