"""zato.connector.reach: a server the holder's host could not reach is tried after the others,
for a pause that doubles while it keeps failing and ends as soon as it answers."""

from __future__ import annotations

from zato.connector.reach import Reach

SERVERS = ["a:1", "b:1", "c:1"]


def test_round_robin_while_every_server_answers():
    reach = Reach()
    assert [reach.order(SERVERS, i, 0.0)[0] for i in range(4)] == ["a:1", "b:1", "c:1", "a:1"]


def test_a_server_that_failed_goes_last_then_takes_its_turn_again():
    reach = Reach(first=1.0, cap=4.0)
    assert reach.failed("b:1", now=10.0) == 1.0
    assert reach.order(SERVERS, 1, 10.5) == ["c:1", "a:1", "b:1"]  # still tried, after the others
    assert reach.order(SERVERS, 1, 11.0) == ["b:1", "c:1", "a:1"]  # the pause is over
    assert reach.late(10.5) == ["b:1"] and reach.late(11.0) == []


def test_the_pause_doubles_up_to_the_cap_and_an_answer_ends_it():
    reach = Reach(first=1.0, cap=4.0)
    assert [reach.failed("a:1", now=0.0) for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    reach.answered("a:1")
    assert reach.order(SERVERS, 0, 0.5)[0] == "a:1"
    assert reach.failed("a:1", now=0.0) == 1.0


def test_every_server_failing_is_still_tried_in_turn():
    reach = Reach()
    for address in SERVERS:
        reach.failed(address, now=0.0)
    assert reach.order(SERVERS, 2, 0.1) == ["c:1", "a:1", "b:1"]
