"""`zato conn edit amqp-outgoing ... --new-name` while messages flow through the connection, in
a real one-server cluster (it holds the lease) against the real RabbitMQ.

Before, the supervisor started the new name's connector at once, while the old name's (the same
definition) still ran: two publishers of one connection at once, which an edit of the connection
never allows (test_outgoing_edit), and what a service had sent under the old name after the old
connector stopped stayed in Redis with no connector to send it. Now the new name's connector
starts once the old one has exited (zato.connector.process, WAITS_FOR_OLD, by the definition's
ODB id), and what is left under the old name goes out through it."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import uuid

import redis
import requests

from tests.conn_support import Rabbit, running_pids
from tests.support import REDIS_URL, wait_for, zato
from zato.coord.queues import OutQueue

RENAMES = 3
PAUSE = 0.02  # seconds between two messages a service sends (50 a second)


def _running_pid(cluster: str, name: str) -> int | None:
    return running_pids(cluster).get(name)


SERVICE = """
from zato.server.service import Service


class SendTo(Service):
    name = "rename.send"

    def handle(self):
        self.outgoing.amqp.send(self.request.payload["n"], self.request.payload["out"])
"""


class Sender(threading.Thread):
    """A client calling a service that sends through the connection by the name the client
    knows (the old one until the rename returned), a message each PAUSE. `sent`: the messages
    the service took (one refused because its connection has another name now is sent again)."""

    def __init__(self, url: str, name: str):
        super().__init__(daemon=True)
        self.url, self.name = url, name
        self.sent: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.done.wait(PAUSE):
            n = len(self.sent)
            with contextlib.suppress(requests.RequestException):
                if session.post(self.url, json={"n": n, "out": self.name}, timeout=30).status_code == 200:
                    self.sent.append(n)


def rename(path: str, old: str, new: str) -> None:
    """The rename, tried again while it is refused because messages wait under the old name (it
    is refused then: they would stay behind)."""

    def done() -> bool:
        run = zato("conn", "edit", "amqp-outgoing", path, "--name", old, "--new-name", new, check=False)
        assert run.returncode == 0 or "cannot be renamed" in run.stderr, run.stderr
        return run.returncode == 0

    wait_for(done, 120, interval=0.05, what=f"{old} renamed {new}")


def test_a_rename_while_messages_flow_runs_one_publisher_at_a_time_and_loses_none(quickstart):
    qs = quickstart(servers=1, lb=False)
    rabbit = Rabbit()
    sender = Sender(qs.server_url("server1") + "/rename-send", "out0")
    try:
        qs.start()
        qs.deploy("rename_send", SERVICE)
        zato("channel", "create", qs.path, "--name", "rename-send", "--url-path", "/rename-send",
             "--service", "rename.send")  # fmt: skip
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        queue = rabbit.queue(f"zt-orename-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out0", "--def", "rabbit",
             "--routing-key", queue)  # fmt: skip
        wait_for(lambda: _running_pid(qs.cluster, "amqp-outgoing:out0"), 60, what="the connector running")
        sender.start()
        for n in range(1, RENAMES + 1):
            before = len(sender.sent)
            wait_for(lambda: len(sender.sent) > before + 10, 60, what=f"messages sent through out{n - 1}")  # noqa: B023
            rename(qs.path, f"out{n - 1}", f"out{n}")
            sender.name = new = f"out{n}"
            wait_for(lambda: _running_pid(qs.cluster, f"amqp-outgoing:{new}"), 60, what=f"{new} running")  # noqa: B023
        sender.done.set()
        sender.join()
        with open(os.path.join(qs.server_dir("server1"), "logs", "server.log"), errors="replace") as f:
            log = f.read()
        for n in range(1, RENAMES + 1):
            old, new = f"amqp-outgoing:out{n - 1}", f"amqp-outgoing:out{n}"
            old_exit = log.index(f"child {old} STOPPING->STOPPED")
            new_start = log.index(f"child {new} STOPPED->STARTING")
            assert old_exit < new_start, f"{new} started while {old} still ran:\n" + "\n".join(
                line for line in log.splitlines() if f"child {old} " in line or f"child {new} " in line
            )
            assert f"child {old}: renamed {new}, stopping pid" in log
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        names = [f"out{n}" for n in range(RENAMES + 1)]
        left = lambda: sum(sum(OutQueue(client, qs.cluster, "amqp", n).depth()) for n in names)  # noqa: E731
        wait_for(lambda: left() == 0, 60, what="nothing left in Redis under any of its names")
        sent = len(sender.sent)
        wait_for(lambda: rabbit.count(queue) >= sent, 60, what=f"{sent} messages at the broker")
        got = collections.Counter(json.loads(body) for _, body in rabbit.get_all(queue))
        assert sorted(got) == list(range(sent)), f"lost: {sorted(set(range(sent)) - set(got))}"
        assert [n for n, c in got.items() if c > 1] == [], "sent twice"
    finally:
        sender.done.set()
        rabbit.close()
        qs.close()
