"""Scripts that write several keys, against a key of another type (a Redis writer's, or damaged:
docs/trust.md). Redis keeps the writes a script made before one of its commands failed, so each
checks the keys it writes before its first write: refused whole, with the key named, or done
whole. Before, each left its first writes: a call or a message lost, a rename half-made, a
lease nobody held. The real Redis, a real ODB (SQLite) for the channel changes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from tests.conn_support import sqlite_odb_and_redis, zmq_channel_handed_over
from zato.common.errors import CoordError
from zato.config.settings import LeaseSettings
from zato.connector import definitions
from zato.coord.async_invoke import MAX_DEATHS, AsyncTaker, decode, worker_id
from zato.coord.handoff import Handoff
from zato.coord.keys import Keys
from zato.coord.lease import Lease, read_holder
from zato.odb import connectors

SETTINGS = LeaseSettings(ttl=1.5, renew_interval=0.3, renew_deadline=1.0, retry_interval=1.0)


@pytest.fixture
def env(tmp_path):
    with sqlite_odb_and_redis(tmp_path, "luapart") as made:
        yield made


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("damaged", ["async_parked", "async_queue"])
def test_a_dead_workers_call_stays_when_where_it_goes_is_of_another_type(env, caplog, damaged):
    _, cluster, client = env
    keys = Keys(cluster)
    dead = worker_id("s3", _dead_pid())
    deaths = MAX_DEATHS - 1 if damaged == "async_parked" else 0  # the next death parks it
    raw = json.dumps({"service": "jobs.run", "payload": {}, "cid": "K1", "deaths": deaths})
    client.rpush(keys.async_processing(dead), raw)
    client.sadd(keys.async_workers, dead)
    client.set(getattr(keys, damaged), "not a list")
    reaper = AsyncTaker(client, cluster, worker_id("s3", os.getpid()))
    with caplog.at_level(logging.WARNING, logger="zato.async"):
        assert reaper.reap() == 0
    assert client.lrange(keys.async_processing(dead), 0, -1) == [raw]  # not lost
    assert dead in client.smembers(keys.async_workers)  # looked at again at the next reap
    where = getattr(keys, damaged)
    said = f"the calls of a dead worker stay in {keys.async_processing(dead)}: WRONGTYPE {where}"
    assert said in caplog.text
    client.delete(where)  # mended: the next reap hands it on
    reaper.reap()
    went = keys.async_parked if damaged == "async_parked" else keys.async_queue
    assert decode(client.lindex(went, 0)).cid == "K1"
    assert dead not in client.smembers(keys.async_workers)


def test_a_message_given_back_stays_when_the_hand_off_queue_is_of_another_type(env):
    _, cluster, client = env
    handoff = Handoff(client, cluster, "zmq-channel", "a", epoch=3)
    assert handoff.hand_over(["m1"])
    assert handoff.take_many(1) == ["m1"]
    client.set(handoff.queue, "not a list")
    with pytest.raises(CoordError, match=f"WRONGTYPE {handoff.queue} holds a string, not a list"):
        handoff.give_back(["m1"])
    assert client.lrange(handoff.processing, 0, -1) == ["m1"]  # run again by the next connector


def _channel(db, client, cluster: str, name: str) -> Handoff:  # noqa: ANN001
    return zmq_channel_handed_over(db, client, cluster, name, 45995, take=1)  # one taken, one waiting


def _names(db, cluster: str) -> list[str]:  # noqa: ANN001
    return [v["name"] for v in connectors.list_all(db, cluster, "zmq-channel")]


@pytest.mark.parametrize("damaged", ["processing", "takers"])
def test_a_rename_refused_for_a_key_of_another_type_moves_nothing(env, damaged):
    db, cluster, client = env
    old = _channel(db, client, cluster, "b")
    new = Handoff(client, cluster, "zmq-channel", "c")
    key = new.processing if damaged == "processing" else new.takers
    client.set(key, "not a list or set")
    with pytest.raises(CoordError, match=f"WRONGTYPE {key} holds a string.*nothing changed"):
        definitions.edit(db, client, cluster, "zmq-channel", "b", {"name": "c"})
    assert _names(db, cluster) == ["b"]  # the ODB change undone, and Redis's part not half-made:
    assert client.lrange(old.queue, 0, -1) == ["m2"]
    assert client.lrange(old.processing, 0, -1) == ["m1"]
    assert not client.exists(new.queue) and not client.exists(old.renamed)
    client.delete(key)
    definitions.edit(db, client, cluster, "zmq-channel", "b", {"name": "c"})
    assert client.lrange(new.queue, 0, -1) + client.lrange(new.processing, 0, -1) == ["m2", "m1"]


def test_a_delete_refused_for_a_takers_key_of_another_type_drops_nothing(env):
    db, cluster, client = env
    handoff = _channel(db, client, cluster, "d")
    client.set(Keys(cluster).epoch, "garbage")  # unknown: the takers set is not read first
    client.set(handoff.takers, "not a set")
    with pytest.raises(CoordError, match=f"WRONGTYPE {handoff.takers} holds a string, not a set"):
        definitions.delete(db, client, cluster, "zmq-channel", "d")
    assert _names(db, cluster) == ["d"]
    assert client.lrange(handoff.queue, 0, -1) == ["m2"]  # the channel's messages are still there
    assert client.lrange(handoff.processing, 0, -1) == ["m1"]


@pytest.mark.parametrize("seen", [0, 7])
def test_an_epoch_key_of_another_type_is_written_over_by_the_next_acquisition(env, caplog, seen):
    _, cluster, client = env
    keys = Keys(cluster)
    client.hset(keys.epoch, "n", "5")
    lease = Lease(client, cluster, "s1", SETTINGS)
    lease.highest_epoch = seen
    with caplog.at_level(logging.WARNING, logger="zato.lease"):
        assert lease.remaining_ms() == -2  # a standby checks first: nobody holds it
    assert f"the lease epoch in Redis ({keys.epoch}) cannot be read: WRONGTYPE" in caplog.text
    attempt = lease.try_acquire()
    assert attempt.acquired and attempt.epoch == seen + 1
    assert client.get(keys.epoch) == str(seen + 1)
    holder = read_holder(client, cluster)
    assert holder is not None and (holder.server, holder.epoch) == ("s1", seen + 1)
    assert lease.release()


def test_an_epoch_key_of_another_type_is_unknown_to_a_rename_and_said(env, caplog):
    db, cluster, client = env
    _channel(db, client, cluster, "e")
    client.hset(Keys(cluster).epoch, "n", "5")
    with caplog.at_level(logging.WARNING):
        definitions.edit(db, client, cluster, "zmq-channel", "e", {"name": "f"})
    assert _names(db, cluster) == ["f"]
    new = Handoff(client, cluster, "zmq-channel", "f")
    assert client.lrange(new.queue, 0, -1) + client.lrange(new.processing, 0, -1) == ["m2", "m1"]
    assert "WRONGTYPE" in caplog.text and "taken as unknown, so no connector of an older epoch" in caplog.text
