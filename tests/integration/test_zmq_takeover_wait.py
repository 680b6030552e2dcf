"""A takeover and a ZeroMQ channel's hand-off: the new holder's connector must not run again
what the old holder's connector, still alive, is running. Real connector processes (two
epochs), the real Redis and a real HTTP server standing in for the servers (it refuses a call
whose epoch is older than the newest, as servers do, and holds the service's calls until the
test lets them answer)."""

from __future__ import annotations

import collections
import json
import time

import pytest
import redis

from tests.conn_support import FakeServer, log_text, make_server_dir, set_epoch, start_connector, stop_process
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, wait_for
from zato.coord import handoff
from zato.coord.handoff import Handoff
from zato.odb import connectors
from zato.odb.engine import ODB

MESSAGES = 3
WAITING = "of an older epoch (the old holder's) still alive: waiting up to 140 s"


@pytest.fixture
def env(tmp_path):
    cluster = cluster_name("zmqrob-takeover")
    server_dir = make_server_dir(str(tmp_path), cluster)
    odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
    set_epoch(cluster, 1)
    fake = FakeServer(cluster)
    client = redis.Redis.from_url(REDIS_URL, encoding="latin-1", decode_responses=True)
    procs: list = []
    yield dict(cluster=cluster, dir=server_dir, odb=odb, fake=fake, client=client, procs=procs)
    fake.release.set()
    for p in procs:
        stop_process(p)
    fake.close()
    odb.dispose()
    client.close()
    cleanup_redis(cluster)


def _numbers(fake: FakeServer) -> collections.Counter:
    return collections.Counter(json.loads(b)["n"] for b in fake.bodies("demo.held"))


@pytest.mark.parametrize("held", [3.0, handoff.LIVE_TTL + 4.0], ids=["briefly", "past-the-alive-keys-ttl"])
def test_a_takeovers_connector_waits_for_the_old_holders_one_still_running_handed_over_messages(env, held):
    """The old holder's connector (epoch 1) runs three handed-over messages (taken into the
    hand-off's processing list) when a takeover comes (epoch 2): it notices, stops, and waits
    for the three answers, which the servers had accepted before the epoch moved. Before, the
    new holder's connector took them at its start for a killed connector's leftovers and ran
    them again (each twice); and the old one, busy in its stop, refreshed its alive key no
    more, so past LIVE_TTL it looked gone even to a connector that waits for it. Now its alive
    key is refreshed by a thread of its own while it lives, and the new holder's connector
    waits (bounded) for one of an older epoch as it waits for one of its own: each runs once."""
    fake, name = env["fake"], "xtake"
    fake.held.add("demo.held")
    address = f">tcp://127.0.0.1:{free_port()}"  # connects: no port for the two to share
    connectors.create(
        env["odb"], env["cluster"], "zmq-channel",
        {"name": name, "address": address, "service": "demo.held", "max_in_flight": 4, "timeout": 120},
    )  # fmt: skip
    lists = Handoff(env["client"], env["cluster"], "zmq-channel", name)
    assert lists.hand_over([json.dumps({"n": n}) for n in range(MESSAGES)])  # as a stopping connector does
    old = start_connector(env["dir"], "zmq-channel", name, epoch=1)
    env["procs"].append(old)
    wait_for(lambda: fake.active == MESSAGES, timeout=60, what="the old connector running the three")
    set_epoch(env["cluster"], 2)  # a takeover: the old holder's calls under way were accepted
    new = start_connector(env["dir"], "zmq-channel", name, epoch=2)
    env["procs"].append(new)
    wait_for(lambda: "lease lost" in log_text(env["dir"]), timeout=30, what="the old connector stopping")
    # The new one started (a loaded machine may take seconds to start a process) and saw the
    # old one alive: before, the three were let answer on a fixed delay, and a new connector
    # that started only after the old one had exited proved nothing (nor said it waited).
    wait_for(lambda: WAITING in log_text(env["dir"]), timeout=60, what="the new one waiting for the old one")
    time.sleep(held)  # the three still running at their server
    fake.release.set()
    wait_for(lambda: old.poll() is not None, timeout=60, what="the old connector's exit")
    lists.hand_over([json.dumps({"n": MESSAGES})])  # one more, through the new connector
    wait_for(lambda: MESSAGES in _numbers(fake), timeout=60, what="the new connector running one more")
    wait_for(lambda: not env["client"].llen(lists.processing), timeout=30, what="nothing left to run")
    time.sleep(1.0)  # a run the new connector started meanwhile reaches the server
    counts = _numbers(fake)
    assert counts == collections.Counter(range(MESSAGES + 1)), f"ran more than once: {counts}"
    assert new.poll() is None
    assert "left unanswered" not in log_text(env["dir"])  # it took none of the three for a killed one's
