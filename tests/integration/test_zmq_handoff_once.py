"""ZeroMQ channel hand-off in a real quickstart cluster, counted message by message: edits in a
row run each handed-over message once."""

from __future__ import annotations

import collections
import json

import pytest
import redis
import zmq

from tests.conn_support import services_source
from tests.support import REDIS_URL, cluster_name, free_port, wait_for, zato
from zato.coord.lease import read_supervisor_status

MESSAGES = 300


def _client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def _child(cluster: str, name: str) -> dict:
    children = (read_supervisor_status(_client(), cluster) or {}).get("children", [])
    return {c["name"]: c for c in children}.get(name, {})


def _replaced(cluster: str, name: str, pid: int | None) -> dict:
    def running_again() -> dict | None:
        child = _child(cluster, name)
        running = str(child.get("state")).lower() == "running"
        return child if running and child.get("pid") != pid else None

    return wait_for(running_again, timeout=60, what=f"{name} running (again)")


def _received(cluster: str) -> collections.Counter:
    raws = _client().lrange(f"zato:{cluster}:test:received", 0, -1)
    return collections.Counter(json.loads(r)["n"] for r in raws)


@pytest.fixture(scope="module")
def qs(module_quickstart, tmp_path_factory):
    cluster = module_quickstart(servers=1, lb=False, cluster=cluster_name("zmq-once"))
    cluster.start()
    module = tmp_path_factory.mktemp("mod") / "conn_services.py"
    module.write_text(services_source())
    zato("deploy", cluster.path, str(module))
    yield cluster
    _client().delete(f"zato:{cluster.cluster}:test:received")


def test_two_edits_in_a_row_run_each_handed_over_message_once(qs):
    """Before: the first edit handed the socket's messages to the next connector; a second edit
    while that one still ran them started a third, which read the hand-off's processing list,
    took what the second was running for what a killed connector had left, and ran it again
    (each edit: up to --max-in-flight duplicates). Now a connector runs that list only once no
    other connector of the channel is alive (or, killed, has missed its liveness key's TTL)."""
    name, child = "xzonce", "zmq-channel:xzonce"
    address = f"tcp://127.0.0.1:{free_port()}"
    zato("conn", "create", "zmq-channel", qs.path, "--name", name, "--address", address,
         "--service", "conn.record", "--max-in-flight", "8")  # fmt: skip
    pid = _replaced(qs.cluster, child, None)["pid"]
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, 60000)
    push.connect(address)
    try:
        for i in range(MESSAGES):
            push.send(json.dumps({"n": i, "wait_ms": 300}).encode())
        wait_for(lambda: sum(_received(qs.cluster).values()) >= 8, timeout=60, what="the first messages run")
        for in_flight in ("6", "8", "6"):  # each while the last one runs what was handed to it
            zato("conn", "edit", "zmq-channel", qs.path, "--name", name, "--max-in-flight", in_flight)
            pid = _replaced(qs.cluster, child, pid)["pid"]
            before = sum(_received(qs.cluster).values())

            def running(b: int = before) -> bool:
                counts = _received(qs.cluster)
                return sum(counts.values()) >= b + 16 or len(counts) == MESSAGES

            wait_for(running, timeout=60, what="handed-over messages running")

        def all_arrived() -> collections.Counter | None:
            counts = _received(qs.cluster)
            return counts if set(counts) == set(range(MESSAGES)) else None

        counts = wait_for(all_arrived, timeout=240, interval=0.5, what="every message run")
        twice = sorted(n for n, c in counts.items() if c > 1)
        print(f"3 edits: {MESSAGES} of {MESSAGES} arrived, {sum(counts.values()) - MESSAGES} duplicates")
        assert twice == [], f"{len(twice)} messages ran more than once: {twice}"
    finally:
        push.close(linger=0)
        zctx.term()
        zato("conn", "delete", "zmq-channel", qs.path, "--name", name)
