"""AMQP outgoing while only Redis fails (its queue key of another type, Redis unreachable): the
connector keeps its one connection to the broker, with what awaits its confirm, and tries Redis
again; once Redis is mended every message arrives once. Before, each try of Redis closed the
broker connection and opened another (an INFO line 'connected to AMQP broker' and a new
connection in RabbitMQ's list each time), and what was confirmed but not yet removed from Redis
was published again by the next connection."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest
import redis

from tests.conn_support import (
    Rabbit,
    TCPProxy,
    log_text,
    make_server_dir,
    out_key,
    set_epoch,
    start_connector,
    stop_process,
)
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, wait_for
from zato.config.settings import load_server_settings
from zato.coord.queues import OutQueue, encode
from zato.odb import connectors
from zato.odb.engine import ODB
from zato.service.outgoing import make_outgoing

CONNECTED = "connected to AMQP broker"
# The queue's key made a string, what waits in it kept aside (it may have been taken already);
# then mended: the string deleted, what was kept aside put back.
_BREAK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[2]) end
redis.call('SET', KEYS[1], 'not a list')
"""
_MEND = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[1]) end
"""


@pytest.fixture
def env(tmp_path):
    """A cluster whose connector reaches Redis through a proxy the test can stop."""
    cluster = cluster_name("amqpredis")
    proxy = TCPProxy(free_port(), ("127.0.0.1", 6379))
    proxy.start()
    server_dir = make_server_dir(str(tmp_path), cluster, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
    set_epoch(cluster, 1)
    rabbit = Rabbit()
    queue = rabbit.queue(f"zt-outr-{uuid.uuid4().hex[:8]}")
    connectors.create(odb, cluster, "amqp-def", {"name": "rabbit"})
    connectors.create(
        odb, cluster, "amqp-outgoing", {"name": "orders", "def": "rabbit", "routing_key": queue}
    )
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    settings = load_server_settings(server_dir)
    env = dict(
        cluster=cluster,
        dir=server_dir,
        proxy=proxy,
        rabbit=rabbit,
        queue=queue,
        client=client,
        out=make_outgoing(settings, client),  # straight to Redis, not through the proxy
        q=OutQueue(client, cluster, "amqp", "orders"),
        procs=[],
    )
    yield env
    try:
        for p in env["procs"]:
            stop_process(p)
        proxy.stop()
        rabbit.close()  # raises when the shared broker dropped it (another test's stop_app)
    finally:
        odb.dispose()
        client.close()
        cleanup_redis(cluster)


def _start(env) -> subprocess.Popen:
    proc = start_connector(env["dir"], "amqp-outgoing", "orders")
    env["procs"].append(proc)
    wait_for(lambda: CONNECTED in log_text(env["dir"]), 60, what="the connector connected to the broker")
    return proc


def _broker_ports(pid: int) -> set[str]:
    """The local ports of the connections process `pid` holds to the broker (port 5672)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", "( dport = :5672 )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split()[2].rsplit(":", 1)[1] for line in out.splitlines() if f"pid={pid}," in line}


def _watching(pid: int, seen: set[str], done) -> bool:  # noqa: ANN001 - any callable
    """done(), noting on the way the broker connections `pid` holds (each one seen, by port)."""
    seen |= _broker_ports(pid)
    return bool(done())


def _received(env, got: list) -> int:
    got.extend(json.loads(body)["n"] for _, body in env["rabbit"].get_all(env["queue"]))
    return len(got)


def _connected_lines(env) -> list[str]:
    return [line for line in log_text(env["dir"]).splitlines() if CONNECTED in line]


def _watch_for(env, pid: int, seconds: float, seen: set[str]) -> None:
    """Note the broker connections of `pid` for `seconds` (the connector tries Redis again after
    0.5, 1, 2 and 4 s: before, a new broker connection each time)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        seen |= _broker_ports(pid)
        time.sleep(0.2)


def test_a_queue_key_of_another_type_mid_stream_keeps_the_broker_connection_and_its_confirms(env):
    """Redis answers WRONGTYPE (the queue a string) while messages are being published: the
    confirmed ones stay in the processing list until Redis answers again, the connection stays
    open, and every message arrives once when the key is mended (its messages put back)."""
    proc = _start(env)
    q, client, n = env["q"], env["client"], 3000
    seen: set[str] = set()
    wait_for(lambda: _watching(proc.pid, seen, lambda: seen), 30, 0.2, "the connector's broker connection")
    stash = f"{q.queue}:stash"
    client.lpush(q.queue, *[encode({"n": i}, key=out_key(env["cluster"])) for i in range(n)])
    wait_for(lambda: client.llen(q.queue) < n, 30, what="messages taken into the processing list")
    client.eval(_BREAK, 2, q.queue, stash)
    try:
        wait_for(lambda: "WRONGTYPE" in log_text(env["dir"]), 30, what="the connector's line")
        _watch_for(env, proc.pid, 8, seen)
    finally:
        client.eval(_MEND, 2, q.queue, stash)
    _each_sent_once_over_one_connection(env, proc, n, seen, [])


def _each_sent_once_over_one_connection(env, proc, n: int, seen: set[str], got: list) -> None:  # noqa: ANN001
    """Messages 0..n-1 all received once, the queue and its processing list empty, and one
    broker connection (`seen`, watched meanwhile) from start to end; the connector runs on."""
    wait_for(
        lambda: _watching(proc.pid, seen, lambda: _received(env, got) >= n),
        120,
        what=f"all {n} messages",
        interval=0.2,
    )
    wait_for(lambda: env["q"].depth() == (0, 0), 30, what="the queue and the processing list emptied")
    _received(env, got)
    assert len(seen) == 1, f"{len(seen)} broker connections: {_connected_lines(env)}"
    assert len(_connected_lines(env)) == 1, _connected_lines(env)
    assert len(got) - len(set(got)) == 0, f"{len(got) - len(set(got))} duplicates"
    assert sorted(got) == list(range(n))
    assert proc.poll() is None


def test_redis_unreachable_keeps_the_broker_connection_and_sends_once_it_is_back(env):
    """Redis away (its connections cut, connections refused) for some seconds while messages
    are sent: one broker connection throughout, each message out once after Redis is back."""
    proc = _start(env)
    n = 400
    for i in range(n // 2):
        env["out"].amqp.send({"n": i}, "orders")
    got: list = []
    wait_for(lambda: _received(env, got) > 0, 60, what="the first messages")
    seen: set[str] = _broker_ports(proc.pid)
    env["proxy"].stop()
    try:
        for i in range(n // 2, n):  # they wait in Redis: the connector cannot reach it
            env["out"].amqp.send({"n": i}, "orders")
        cut = re.compile(r"outgoing amqp 'orders': \w*(Connection|Timeout)")
        wait_for(lambda: cut.search(log_text(env["dir"])), 30, what="the connector's line")
        _watch_for(env, proc.pid, 8, seen)
    finally:
        env["proxy"].start()
    _each_sent_once_over_one_connection(env, proc, n, seen, got)
    assert "Redis answers again" in log_text(env["dir"])


def test_a_park_redis_refuses_keeps_the_broker_connection_and_parks_it_once_mended(env):
    """The broker returns a message no queue takes, and Redis refuses to park it (the parked
    list's key a string): before, the connection was closed, and every new one published it
    again, had it returned and failed to park it; now the connection stays, the message is
    parked once the key is mended, and what was sent after it goes out then, once each."""
    q, client = env["q"], env["client"]
    client.set(q.parked, "not a list")
    proc = _start(env)
    got: list = []
    for i in range(5):
        env["out"].amqp.send({"n": i}, "orders")
    wait_for(lambda: _received(env, got) >= 5, 60, what="the first messages")
    env["out"].amqp.send({"n": -1}, "orders", routing_key=f"zt-nowhere-{uuid.uuid4().hex[:8]}")
    for i in range(5, 10):
        env["out"].amqp.send({"n": i}, "orders")
    wait_for(lambda: "WRONGTYPE" in log_text(env["dir"]), 30, what="the connector's line")
    seen: set[str] = set()
    _watch_for(env, proc.pid, 8, seen)
    client.delete(q.parked)  # mended
    wait_for(lambda: client.llen(q.parked) == 1, 60, what="the returned message parked")
    wait_for(lambda: _received(env, got) >= 10, 60, what="the messages sent after it")
    wait_for(lambda: q.depth() == (0, 0), 30, what="the queue and the processing list emptied")
    _received(env, got)
    assert len(seen) == 1, f"{len(seen)} broker connections: {_connected_lines(env)}"
    assert len(_connected_lines(env)) == 1, _connected_lines(env)
    assert sorted(got) == list(range(10))
    assert client.llen(q.parked) == 1
    assert proc.poll() is None
