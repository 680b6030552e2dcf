"""A holder whose connector cannot reach its broker hands the lease over (zato.connector.handover),
on the real Redis the servers share: signed member entries, the connectors' stats, the notes.

What the host tests (tests/hosts/test_broker_reach.py) cannot wait out: a broker that is away
for every server for longer than the hand-over notes live (300 s; 2 s here). The lease moves
once for it, not around the cluster again each time the notes expire, which restarted every
connector of the cluster each time, for as long as the outage lasted.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis

from tests.support import REDIS_URL, cluster_name
from zato.connector.handover import Handover
from zato.coord import connector_stats
from zato.coord.membership import Member, RedisMembership
from zato.coord.signing import member_key

CONNECTOR = "amqp-channel:orders"
YIELD_FOR = 2.0  # seconds the notes live (300 s in a server)


@pytest.fixture
def world():
    cluster = cluster_name("hov")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = member_key("hand-over secret", cluster)
    membership = RedisMembership(client, cluster, key)
    names = ["s1", "s2", "s3"]
    for port, name in enumerate(names, start=17100):
        membership.announce(Member(name, "127.0.0.1", port, 1000 + port, time.time()), ttl=60)

    def handover(name: str) -> Handover:
        own = RedisMembership(client, cluster, key)
        return Handover(client, cluster, name, own, after=10.0, yield_for=YIELD_FOR)

    def stuck() -> None:  # what the connector writes while it cannot reach its broker
        error = "cannot connect to AMQP broker at 10.9.9.9:5672: timed out"
        stats = {"state": "reconnecting", "last_error": error}
        connector_stats.write(client, cluster, CONNECTOR, stats, ttl=60)

    try:
        yield handover, stuck
    finally:
        client.delete(*client.keys(f"zato:{cluster}:*") or ["-"])
        client.close()


def hands_over(h: Handover, start: float) -> str | None:
    """due() once the connector has been reconnecting for the whole wait, seen from `start`."""
    assert h.due(start, [CONNECTOR]) is None
    return h.due(start + 10.0, [CONNECTOR])


def test_the_broker_away_for_good_moves_the_lease_once_not_each_time_the_notes_expire(world, caplog):
    handover, stuck = world
    stuck()
    s1, s2 = handover("s1"), handover("s2")
    why = hands_over(s1, 0.0)
    assert why is not None and CONNECTOR in why  # s1's link may be the one at fault: it hands over

    # s2 took the lease; the broker is away for it too. Then longer than the notes live goes by.
    caplog.set_level(logging.WARNING, logger="zato.supervisor")
    assert hands_over(s2, 100.0) is None
    deadline, now = time.monotonic() + 2 * YIELD_FOR, 111.0
    while time.monotonic() < deadline:
        stuck()
        assert s2.due(now, [CONNECTOR]) is None, "s2 handed the lease over again"
        now += 1.0
        time.sleep(0.1)
    said = [r.getMessage() for r in caplog.records if "keeping the lease" in r.getMessage()]
    assert len(said) == 1, said
    assert "s1 handed the lease over for the same connector" in said[0]


def test_another_connector_stuck_on_the_next_holder_still_hands_the_lease_over(world):
    handover, stuck = world
    stuck()
    assert hands_over(handover("s1"), 0.0) is not None
    s2 = handover("s2")
    other = "amqp-outgoing:payments"
    client = s2.client
    error = "cannot connect to AMQP broker at 10.9.9.8:5672: timed out"
    connector_stats.write(client, s2.cluster, other, {"state": "reconnecting", "last_error": error}, ttl=60)
    assert s2.due(0.0, [other]) is None
    why = s2.due(10.0, [other])
    assert why is not None and other in why  # a note for amqp-channel:orders says nothing of this one
