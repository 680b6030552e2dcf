"""A rolling upgrade: servers of the new version run with what servers of an older one left in
Redis and the ODB. The older version's data is written here in its exact shapes (taken from
its code), rather than by running the older code."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.conn_support import Rabbit
from tests.support import wait_for, zato
from zato.coord.async_invoke import decode, signed
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.signing import call_key

RECORDER = """
from zato.service import Service

class Record(Service):
    name = "upgrade.record"

    def handle(self):
        self.kvdb.conn.rpush(self.request.payload["into"], self.request.payload["n"])
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    cluster = module_quickstart(servers=1, workers=1)
    cluster.start()
    cluster.deploy("upgrade_recorder", RECORDER)
    return cluster


def test_invoke_async_calls_an_older_server_queued_are_parked_then_run_with_sign(qs):
    """invoke_async calls as a server of a version before calls were signed queues them
    ({"service", "payload", "cid"}, no "sig"; zato/coord/async_invoke.py at 99abd80): while
    such a server still runs next to upgraded ones, an upgraded worker takes some of its calls.
    They are parked, not run and not lost, and `zato cluster run-parked --sign` runs each once."""
    keys = Keys(qs.cluster)
    into = f"{keys.prefix}test:upgrade-ran"
    client = connect(qs.settings("server1").redis)
    try:
        for n in (1, 2, 3):
            call = {"service": "upgrade.record", "payload": {"into": into, "n": n}, "cid": f"KOLD{n}"}
            client.rpush(keys.async_queue, json.dumps(call))
        wait_for(lambda: client.llen(keys.async_parked) == 3, 30, what="the 3 unsigned calls parked")
        parked = [decode(raw) for raw in client.lrange(keys.async_parked, 0, -1)]
        assert [c.cid for c in parked] == ["KOLD1", "KOLD2", "KOLD3"]
        assert client.lrange(into, 0, -1) == []  # none ran
        assert "parked in" in qs.server_logs() and "run-parked DIR --sign" in qs.server_logs()

        # without --sign they go round once and are parked again
        out = zato("cluster", "run-parked", qs.path).stdout
        assert out.startswith("invoke_async: 3 parked call(s)"), out
        wait_for(
            lambda: client.llen(keys.async_parked) == 3 and client.llen(keys.async_queue) == 0,
            30,
            what="the calls parked again",
        )
        assert client.lrange(into, 0, -1) == []

        out = zato("cluster", "run-parked", qs.path, "--sign").stdout
        assert out == (
            f"invoke_async: 3 parked call(s) of cluster {qs.cluster} queued again; "
            "3 of them not signed with the cluster's key, signed now\n"
        ), out
        wait_for(lambda: client.llen(into) == 3, 30, what="the 3 calls run")
        assert sorted(client.lrange(into, 0, -1)) == ["1", "2", "3"]
        assert client.llen(keys.async_parked) == 0 and client.llen(keys.async_queue) == 0
    finally:
        client.delete(keys.async_queue, keys.async_parked, into)
        client.close()


def test_run_parked_sign_keeps_what_is_signed_and_what_is_no_call():
    """The signing step alone: a signed call is moved as it is; text that is no call's object
    stays as it is (a worker drops it as malformed, as before); an unsigned one verifies after."""
    from zato.coord.async_invoke import signed_anew

    key = call_key("the-test-cluster-secret", "upgrade")
    old = json.dumps({"service": "s.a", "payload": {"x": [1, 2]}, "cid": "K1", "deaths": 1})
    new = signed_anew(key, old)
    assert signed(key, new) and decode(new).payload == {"x": [1, 2]} and decode(new).deaths == 1
    assert signed_anew(key, new) == new
    assert signed_anew(key, "[1]") == "[1]" and signed_anew(key, "{") == "{"


def _old_outgoing_message(data: object, routing_key: str) -> str:
    """An outgoing AMQP message as a server of 99abd80 queued it (zato/coord/queues.py encode
    and envelope there): no signature."""
    return json.dumps(
        {"id": uuid.uuid4().hex, "ts": time.time(), "exchange": None, "routing_key": routing_key,
         "properties": {}, "text": json.dumps(data)}
    )  # fmt: skip


def test_outgoing_messages_an_older_server_queued_are_sent_by_the_status_hints_command(qs):
    """Unsigned outgoing messages (queued by a server not yet upgraded) are parked by an upgraded
    holder's connector. `zato cluster status` named the command to send them again without
    --sign, which parked them again; now it says --sign, and that command sends them."""
    rabbit = Rabbit()
    queue = rabbit.queue(f"zt-upgrade-out-{uuid.uuid4().hex[:8]}")
    keys = Keys(qs.cluster)
    client = connect(qs.settings("server1").redis)
    try:
        zato("conn", "create", "amqp-def", qs.path, "--name", "upg-rabbit", "--password", "guest")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "upg-out", "--def", "upg-rabbit",
             "--routing-key", queue)  # fmt: skip
        parked = keys.out_parked("amqp", "upg-out")
        for n in (1, 2):
            client.rpush(keys.out_queue("amqp", "upg-out"), _old_outgoing_message({"n": n}, queue))
        wait_for(lambda: client.llen(parked) == 2, 60, what="the 2 unsigned messages parked")
        hint = "zato conn replay-parked amqp-outgoing DIR --name upg-out --sign"
        wait_for(lambda: hint in zato("cluster", "status", qs.path).stdout, 30, what="the status's hint")
        assert rabbit.count(queue) == 0
        out = zato("conn", "replay-parked", "amqp-outgoing", qs.path, "--name", "upg-out", "--sign").stdout
        assert "2 parked message(s) queued again" in out, out
        wait_for(lambda: rabbit.count(queue) == 2, 30, what="the 2 messages on the broker")
        assert sorted(json.loads(body)["n"] for _props, body in rabbit.get_all(queue)) == [1, 2]
        assert client.llen(parked) == 0
    finally:
        zato("conn", "delete", "amqp-outgoing", qs.path, "--name", "upg-out", check=False)
        zato("conn", "delete", "amqp-def", qs.path, "--name", "upg-rabbit", check=False)
        client.close()
        rabbit.close()
