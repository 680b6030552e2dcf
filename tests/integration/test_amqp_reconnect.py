"""The broker is unreachable or goes away: the channel connector says so, reconnects with
back-off, and no message is lost. RabbitMQ itself is shared, so a TCP proxy started by the
test stands for it."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from tests.conn_support import (
    FakeServer,
    Rabbit,
    TCPProxy,
    log_text,
    make_server_dir,
    set_epoch,
    start_connector,
    stop_process,
)
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, wait_for
from zato.coord import connector_stats
from zato.odb import connectors
from zato.odb.engine import ODB


@pytest.fixture
def env(tmp_path):
    cluster = cluster_name("amqprc")
    try:  # a setup that fails half-way (once: under a loaded machine) leaves no Redis keys either
        server_dir = make_server_dir(str(tmp_path), cluster)
        odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
        set_epoch(cluster, 1)
        fake = FakeServer(cluster)
        rabbit = Rabbit()
        proxy = TCPProxy(free_port())
        procs = []
        yield dict(
            cluster=cluster, dir=server_dir, odb=odb, fake=fake, rabbit=rabbit, proxy=proxy, procs=procs
        )
        for p in procs:
            stop_process(p)
        proxy.stop()
        rabbit.close()
        fake.close()
        odb.dispose()
    finally:
        cleanup_redis(cluster)


def _stats(env, name: str) -> dict:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = f"amqp-channel:{name}"
    return connector_stats.read(client, env["cluster"], [key]).get(key, {})


def _ns(env) -> set:
    return {json.loads(b)["n"] for b in env["fake"].bodies("demo.rc")}


def _channel_via_proxy(env, name: str, **fields: str) -> str:
    """A fresh queue and a channel `name` on it (service demo.NAME) reaching RabbitMQ through
    the test's proxy; returns the queue."""
    queue = env["rabbit"].queue(f"zt-{name}-{uuid.uuid4().hex[:8]}")
    connectors.create(
        env["odb"], env["cluster"], "amqp-def", {"name": "viaproxy", "port": str(env["proxy"].port)}
    )
    connectors.create(
        env["odb"],
        env["cluster"],
        "amqp-channel",
        {"name": name, "def": "viaproxy", "queue": queue, "service": f"demo.{name}", **fields},
    )
    return queue


def test_channel_reconnects_when_the_broker_comes_and_goes(env):
    queue = _channel_via_proxy(env, "rc")
    env["procs"].append(start_connector(env["dir"], "amqp-channel", "rc"))
    wait_for(lambda: "cannot connect to AMQP broker" in log_text(env["dir"]), timeout=30, what="a log line")
    wait_for(lambda: _stats(env, "rc").get("state") == "reconnecting", what="state reconnecting")
    env["proxy"].start()  # the broker is reachable now
    for i in range(10):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    wait_for(lambda: _ns(env) == set(range(10)), timeout=60, what="10 messages after connecting")
    env["proxy"].stop()  # the broker goes away while the connector is consuming
    wait_for(lambda: "connection lost" in log_text(env["dir"]), timeout=30, what="connection lost in the log")
    for i in range(10, 20):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    env["proxy"].start()
    wait_for(lambda: _ns(env) == set(range(20)), timeout=60, what="20 messages after reconnecting")
    wait_for(lambda: _stats(env, "rc").get("state") == "running", what="state running")


def test_password_never_shows_in_log_status_or_listing(env):
    connectors.create(
        env["odb"],
        env["cluster"],
        "amqp-def",
        {"name": "closed", "port": str(free_port()), "password": "pw-never-shown-42"},
    )
    connectors.create(
        env["odb"],
        env["cluster"],
        "amqp-channel",
        {"name": "pw", "def": "closed", "queue": "zt-unused", "service": "demo.rc"},
    )
    env["procs"].append(start_connector(env["dir"], "amqp-channel", "pw"))
    wait_for(lambda: _stats(env, "pw").get("last_error"), timeout=30, what="an error in the stats")
    assert "cannot connect" in _stats(env, "pw")["last_error"]
    listing = connectors.list_all(env["odb"], env["cluster"])
    for text in (
        log_text(env["dir"]),
        json.dumps(_stats(env, "pw")),
        json.dumps(listing),
        " ".join(env["procs"][0].args),
    ):
        assert "pw-never-shown-42" not in text


def test_invocations_in_flight_when_the_broker_goes_are_delivered_again(env):
    """The broker goes away while 4 invocations run (prefetch 8): their acks cannot reach it,
    so it requeues those 4 with the 4 not started; once it is back every message reaches the
    service (at least once) and the queue is left empty."""
    queue = _channel_via_proxy(env, "fl", prefetch="8", max_in_flight="4")
    env["fake"].held.add("demo.fl")
    env["proxy"].start()
    for i in range(8):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    env["procs"].append(start_connector(env["dir"], "amqp-channel", "fl"))
    wait_for(lambda: env["fake"].active == 4, timeout=60, what="4 invocations in flight")
    env["proxy"].stop()
    wait_for(lambda: "connection lost" in log_text(env["dir"]), timeout=30, what="connection lost in the log")
    env["fake"].held.clear()
    env["fake"].release.set()  # the 4 finish at the service; their acks have nowhere to go
    env["proxy"].start()

    def ns() -> list:
        return [json.loads(b)["n"] for b in env["fake"].bodies("demo.fl")]

    wait_for(lambda: set(ns()) == set(range(8)), timeout=60, what="all 8 messages at the service")
    wait_for(lambda: env["rabbit"].count(queue) == 0, timeout=30, what="the queue empty")
    wait_for(lambda: _stats(env, "fl").get("state") == "running", what="state running")
    print(f"8 messages, 4 in flight at the cut: {len(ns()) - 8} ran twice")
    assert env["fake"].peak == 4  # never more than max_in_flight at once
