"""IBM MQ connectors in a real quickstart cluster (supervisor, zygote, servers, services) against
the stand-in queue manager: what only the whole server shows, such as the supervisor's hang
check meeting a channel that waits for a slow service."""

from __future__ import annotations

import json
import os

import pytest
import redis

from tests.conn_support import services_source
from tests.ibmmq_support import QM_KINDS, make_qm, put
from tests.support import REDIS_URL, wait_for, zato
from zato.coord import connector_stats


@pytest.fixture(params=QM_KINDS)
def qm(request):
    q = make_qm(request.param)
    yield q
    q.close()


def mq_definitions(qs, qm, *channel: str) -> None:  # noqa: ANN001
    zato("conn", "create", "ibm-mq-def", qs.path, "--name", "qm", "--queue-manager", qm.qmgr,
         "--channel", qm.channel, "--conn-name", qm.conn_name, "--username", qm.user,
         "--password", "-", input=qm.password + "\n")  # fmt: skip
    zato("conn", "create", "ibm-mq-channel", qs.path, "--name", "in", "--def", "qm",
         "--queue", qm.queues["in"], "--service", "conn.record",
         "--backout-queue", qm.queues["backout"], *channel)  # fmt: skip


def received(qs) -> list:  # noqa: ANN001
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return [json.loads(x) for x in client.lrange(f"zato:{qs.cluster}:test:received", 0, -1)]
    finally:
        client.close()


def channel_stats(client: redis.Redis, qs) -> dict:  # noqa: ANN001
    return connector_stats.read(client, qs.cluster, ["ibm-mq-channel:in"]).get("ibm-mq-channel:in") or {}


def test_a_channel_waiting_for_a_slow_service_is_not_taken_for_hung(quickstart, monkeypatch, qm):
    """A service slower than [main] connector_hang_after but within the channel's --timeout:
    before, the channel waited for its answer without showing progress, so the supervisor
    SIGKILLed it as hung in mid-call; the queue manager backed the message out, the service ran
    it again at every start, and at the backout threshold it went to the backout queue although
    the service had taken it every time."""
    monkeypatch.setenv("PYTHONPATH", qm.env().get("PYTHONPATH", ""))  # servers import the stand-in
    qs = quickstart(servers=1, lb=False, extra_conf={"main": {"connector_hang_after": "2"}})
    qs.start()
    module = os.path.join(qs.path, "conn_services.py")
    with open(module, "w") as f:
        f.write(services_source())
    zato("deploy", qs.path, module, "--wait", "60")
    mq_definitions(qs, qm, "--timeout", "60", "--backout-threshold", "2")
    put(qm, qm.queues["in"], [json.dumps({"n": 1, "wait_ms": 5000}).encode()])
    wait_for(lambda: received(qs), timeout=60, what="the service to take the message")
    if not qm.is_real:
        wait_for(lambda: qm.depth(qm.queues["in"]) == (0, 0), timeout=30, what="the message committed")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        stats = wait_for(
            lambda: (s := channel_stats(client, qs)).get("messages_out") and s,
            timeout=10,
            what="the commit in the channel's statistics",
        )
    finally:
        client.close()
    assert stats["messages_out"] == 1 and not stats.get("backouts"), stats
    assert qm.drain(qm.queues["backout"]) == [] and qm.drain(qm.queues["in"]) == []
    assert received(qs) == [{"n": 1, "wait_ms": 5000}]
    assert "made no progress" not in qs.server_logs()
