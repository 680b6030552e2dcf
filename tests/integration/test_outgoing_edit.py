"""`zato conn edit` of an outgoing AMQP connection while the broker is slow to confirm what it
published, in a real one-server cluster against the real RabbitMQ (through a proxy that can hold
the broker's answers on the connections open so far).

Before, the supervisor started the new connector at once, while the old one still waited for the
confirms of what it had published: the new one, at its start, published everything in the
processing list again, those messages too, so each arrived twice (20 of 20). Now an outgoing
connection's new connector starts once the old one has exited (zato.connector.process,
WAITS_FOR_OLD); what is sent meanwhile waits in Redis."""

from __future__ import annotations

import collections
import json
import os
import socket
import threading
import time
import uuid

import redis

from tests.conn_support import Rabbit, TCPProxy
from tests.support import REDIS_URL, free_port, wait_for, zato
from zato.coord.lease import read_supervisor_status
from zato.coord.queues import OutQueue, encode
from zato.coord.signing import outgoing_key

MESSAGES = 20
HOLD = 2.0  # seconds the broker's confirms are held: well within the old connector's drain (5 s)


class HoldingProxy(TCPProxy):
    """hold(): what the broker sends on the connections open now waits in the proxy until
    release(); connections made later pass freely."""

    def __init__(self, port: int):
        super().__init__(port)
        self.gates: list[threading.Event] = []

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        gate = threading.Event()
        gate.set()
        self.gates.append(gate)
        threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, gate), daemon=True).start()

    def hold(self) -> list[threading.Event]:
        held = list(self.gates)
        for gate in held:
            gate.clear()
        return held


def _child(cluster: str, name: str) -> dict:
    status = read_supervisor_status(redis.Redis.from_url(REDIS_URL, decode_responses=True), cluster) or {}
    return {c["name"]: c for c in status.get("children", [])}.get(name, {})


def _running_pid(cluster: str, name: str, not_pid: int | None = None) -> int | None:
    child = _child(cluster, name)
    ok = str(child.get("state")).lower() == "running" and child.get("pid") not in (None, not_pid)
    return child["pid"] if ok else None


def test_an_edit_while_confirms_are_slow_sends_each_message_once(quickstart):
    qs = quickstart(servers=1, lb=False)
    proxy = HoldingProxy(free_port())
    proxy.start()
    rabbit = Rabbit()
    held: list[threading.Event] = []
    try:
        qs.start()
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest",
             "--port", str(proxy.port))  # fmt: skip
        queue = rabbit.queue(f"zt-oedit-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out", "--def", "rabbit",
             "--routing-key", queue)  # fmt: skip
        pid = wait_for(
            lambda: _running_pid(qs.cluster, "amqp-outgoing:out"), 60, what="the connector running"
        )
        out = OutQueue(redis.Redis.from_url(REDIS_URL, decode_responses=True), qs.cluster, "amqp", "out")
        key = outgoing_key(qs.cluster_secret, qs.cluster)  # as the cluster's servers sign messages
        out.push(encode({"n": -1}, key=key))  # its connection is open and publishing
        wait_for(lambda: rabbit.count(queue) == 1, 60, what="the first message at the broker")
        rabbit.get_all(queue)
        wait_for(lambda: out.depth() == (0, 0), 30, what="the first message confirmed")

        held = proxy.hold()  # the broker's confirms to the running connector wait
        out.client.lpush(out.queue, *(encode({"n": n}, key=key) for n in range(MESSAGES)))  # taken in one go
        wait_for(lambda: rabbit.count(queue) == MESSAGES, 60, what="the messages published")
        zato("conn", "edit", "amqp-outgoing", qs.path, "--name", "out", "--content-type", "text/plain")
        wait_for(
            lambda: _child(qs.cluster, "amqp-outgoing:out").get("pid") != pid, 30, what="the edit taken up"
        )
        time.sleep(HOLD)  # the broker is slow to confirm; the old connector waits for it
        for gate in held:
            gate.set()
        wait_for(
            lambda: _running_pid(qs.cluster, "amqp-outgoing:out", not_pid=pid), 60, what="the new connector"
        )
        wait_for(lambda: out.depth() == (0, 0), 60, what="nothing left in Redis")
        time.sleep(1.0)  # a message published twice reaches the queue with the first
        got = collections.Counter(json.loads(body)["n"] for _, body in rabbit.get_all(queue))
        twice = sorted(n for n, c in got.items() if c > 1)
        assert sorted(got) == list(range(MESSAGES)), f"lost: {sorted(set(range(MESSAGES)) - set(got))}"
        assert twice == [], f"{len(twice)} of {MESSAGES} messages sent twice: {twice}"
        log = open(os.path.join(qs.server_dir("server1"), "logs", "server.log"), errors="replace").read()
        assert (
            f"child amqp-outgoing:out: configuration changed, stopping pid {pid} (its messages wait in "
            "Redis; the new one starts once it has exited)" in log
        )
    finally:
        for gate in held:
            gate.set()
        rabbit.close()
        qs.close()
        proxy.stop()
