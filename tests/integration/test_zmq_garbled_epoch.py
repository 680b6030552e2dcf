"""A lease epoch in Redis that is not a number (a Redis writer's, or damaged: docs/trust.md) and
the ZeroMQ channel changes whose Redis part reads it (the delete and the rename forget the
connectors of an older epoch that are gone). Before, both failed on a Lua comparison with nil
until the lease holder put the epoch back, and with no holder (the cluster stopped) for good.
A real ODB (SQLite) and the real Redis."""

from __future__ import annotations

import logging

import pytest

from tests.conn_support import sqlite_odb_and_redis, zmq_channel_handed_over
from zato.connector import definitions
from zato.coord.handoff import Handoff
from zato.coord.keys import Keys
from zato.odb import connectors

GARBLED = ["garbage", "1e5", "-3", "0x10", " 7", ""]


@pytest.fixture
def env(tmp_path):
    with sqlite_odb_and_redis(tmp_path, "zmqrob-epoch") as made:
        yield made


def _channel(db, client, cluster: str, name: str) -> Handoff:  # noqa: ANN001
    return zmq_channel_handed_over(db, client, cluster, name, 45994)


def _names(db, cluster: str) -> list[str]:  # noqa: ANN001
    return [v["name"] for v in connectors.list_all(db, cluster, "zmq-channel")]


@pytest.mark.parametrize("garbled", GARBLED)
def test_a_channel_is_deleted_whatever_the_epoch_key_holds(env, caplog, garbled):
    db, cluster, client = env
    handoff = _channel(db, client, cluster, "a")
    client.set(Keys(cluster).epoch, garbled)
    with caplog.at_level(logging.WARNING):
        deleted = definitions.delete(db, client, cluster, "zmq-channel", "a")
    assert deleted.dropped == 2
    assert _names(db, cluster) == []
    assert not client.exists(handoff.queue)
    assert "is not a whole number in 0..999999999999999: taken as unknown" in caplog.text
    assert "deleting the hand-off of zmq-channel 'a'" in caplog.text


@pytest.mark.parametrize("garbled", GARBLED)
def test_a_channel_is_renamed_whatever_the_epoch_key_holds(env, caplog, garbled):
    db, cluster, client = env
    _channel(db, client, cluster, "b")
    client.set(Keys(cluster).epoch, garbled)
    with caplog.at_level(logging.WARNING):
        definitions.edit(db, client, cluster, "zmq-channel", "b", {"name": "c"})
    assert _names(db, cluster) == ["c"]
    renamed = Handoff(client, cluster, "zmq-channel", "c", epoch=3)
    assert client.lrange(renamed.queue, 0, -1) + client.lrange(renamed.processing, 0, -1) == ["m2", "m1"]
    assert "taken as unknown, so no connector of an older epoch was forgotten" in caplog.text


def test_with_a_numeric_epoch_nothing_is_said(env, caplog):
    db, cluster, client = env
    _channel(db, client, cluster, "d")
    client.set(Keys(cluster).epoch, "4")
    with caplog.at_level(logging.WARNING):
        definitions.delete(db, client, cluster, "zmq-channel", "d")
    assert "taken as unknown" not in caplog.text
