"""One contract for the connector-stats side of the coordination port, run on both
implementations: `RedisConnectorStats` and `MemoryConnectorStats`. What the status view shows:
each connector's last stats while it keeps writing them, nothing once it stopped (its TTL ran
out), and never a field that is not a plain value."""

from __future__ import annotations

import pytest

from tests.integration.cluster_worlds import open_world
from zato.common.errors import CoordUnavailable

TTL = 0.3


@pytest.fixture(params=["redis", "memory"])
def world(request):
    yield from open_world(request.param)


def test_the_status_view_reads_what_each_connector_wrote(world):
    stats = world.stats()
    stats.write("amqp-out.orders", {"state": "running", "messages_out": 3, "last_error": None}, 30)
    stats.write("zmq-channel.feed", {"state": "backoff", "failures": 2}, 30)
    assert stats.read(["amqp-out.orders", "zmq-channel.feed", "never-started"]) == {
        "amqp-out.orders": {"state": "running", "messages_out": 3, "last_error": None},
        "zmq-channel.feed": {"state": "backoff", "failures": 2},
    }
    stats.write("amqp-out.orders", {"state": "stopping", "messages_out": 4}, 30)
    assert stats.read(["amqp-out.orders"]) == {"amqp-out.orders": {"state": "stopping", "messages_out": 4}}
    assert stats.read([]) == {}


def test_a_connector_that_stops_writing_disappears_after_its_ttl(world):
    stats = world.stats()
    stats.write("kept", {"state": "running"}, 30)
    stats.write("gone", {"state": "running"}, TTL)
    world.outlive(TTL, lambda: list(stats.read(["kept", "gone"])) == ["kept"])


def test_only_plain_values_are_shown(world):
    stats = world.stats()
    stats.write("c", {"state": "running", "nested": {"password": "x"}, "items": [1, 2], "ok": True}, 30)
    assert stats.read(["c"]) == {"c": {"state": "running", "ok": True}}


def test_a_connector_that_cannot_reach_the_store_gets_coord_unavailable(world):
    cut = world.stats(cut_off=True)
    with pytest.raises(CoordUnavailable):
        cut.write("c", {"state": "running"}, 30)
    with pytest.raises(CoordUnavailable):
        cut.read(["c"])
