"""An outgoing connector's counters add up as docs/metrics.md gives them: IN is every message
it took from Redis, OUT those the broker confirmed, PARKED those it parked, so once nothing is
in flight IN = OUT + PARKED. Before, a message parked before it was published (one that is not
ours, one pika cannot frame, one for a missing exchange) was left out of IN, and
`zato cluster status` showed IN 3 next to PARKED 4."""

from __future__ import annotations

import json
import uuid

import redis

from tests.conn_support import Rabbit
from tests.integration.test_metrics_connectors import of, scrape
from tests.support import REDIS_URL, wait_for, zato
from zato.coord.queues import OutQueue, encode
from zato.coord.signing import outgoing_key, sign_outgoing


def _counters(qs) -> dict | None:  # noqa: ANN001
    data = json.loads(zato("cluster", "status", qs.path, "--json", check=False).stdout or "{}")
    return next((c for c in data.get("children", []) if c["name"] == "amqp-outgoing:out"), None)


def test_messages_parked_before_publishing_count_in(quickstart):
    qs = quickstart(servers=1, lb=False)
    qs.start()
    rabbit = Rabbit()
    queue = rabbit.queue(f"zt-cnt-{uuid.uuid4().hex[:8]}")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out", "--def", "rabbit",
             "--routing-key", queue)  # fmt: skip
        wait_for(
            lambda: (c := _counters(qs)) and c["state"].startswith("RUNNING"), 60, what="connector running"
        )
        q = OutQueue(client, qs.cluster, "amqp", "out")
        nowhere = f"zt-nx-{uuid.uuid4().hex[:8]}"
        key = outgoing_key(
            qs.cluster_secret, qs.cluster
        )  # as the servers sign (the connector's from the supervisor)
        client.lpush(q.queue, encode({"n": 0}, key=key))
        client.lpush(q.queue, "{not json")  # not ours: not signed
        bad = json.dumps({"id": "b" * 32, "ts": 0, "text": "{}", "properties": {"priority": 300}})
        client.lpush(q.queue, sign_outgoing(key, "amqp", bad))  # signed, but pika cannot frame it
        client.lpush(q.queue, encode({"n": 1}, key=key))
        client.lpush(
            q.queue, encode({"n": -1}, exchange=nowhere, routing_key="rk", key=key)
        )  # no such exchange
        client.lpush(q.queue, encode({"n": 2}, key=key))
        got: list = []
        wait_for(
            lambda: got.extend(rabbit.get_all(queue)) or len(got) == 3, 60, what="3 messages in RabbitMQ"
        )
        wait_for(lambda: client.llen(q.parked) == 3, 30, what="the 3 bad ones parked")
        shown = wait_for(
            lambda: (c := _counters(qs)) and c["messages_out"] == 3 and c["parked"] == 3 and c,
            60,
            what="the status counting 3 out and 3 parked",
        )
        assert (shown["messages_in"], shown["messages_out"], shown["parked"]) == (6, 3, 3), shown
        series, _ = scrape(qs.server_url("server1"))
        counted = {
            name: list(of(series, f"zato_connector_{name}_total", connector="amqp-outgoing:out").values())
            for name in ("messages_in", "messages_out", "parked")
        }
        assert counted == {"messages_in": [6], "messages_out": [3], "parked": [3]}, counted
    finally:
        client.delete(OutQueue(client, qs.cluster, "amqp", "out").parked)
        client.close()
        rabbit.close()
