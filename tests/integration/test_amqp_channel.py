"""AMQP channel connector as a real process against real RabbitMQ, invoking a real HTTP server
that stands in for the internal endpoint."""

from __future__ import annotations

import datetime
import json
import sys
import time
import uuid

import pika
import pika.spec
import pytest
import redis

from tests.conn_support import (
    FakeServer,
    Rabbit,
    log_text,
    make_server_dir,
    set_epoch,
    start_connector,
    stop_process,
    wait_exit,
)
from tests.support import REDIS_URL, cleanup_redis, cluster_name, nested, wait_for
from zato.common.errors import EXIT_LEASE_LOST
from zato.connector import amqp_rescue
from zato.coord import connector_stats
from zato.odb import connectors
from zato.odb.engine import ODB


@pytest.fixture
def env(tmp_path):
    cluster = cluster_name("amqp")
    server_dir = make_server_dir(str(tmp_path), cluster)
    odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
    set_epoch(cluster, 1)
    fake = FakeServer(cluster)
    rabbit = Rabbit()
    procs = []
    try:
        yield dict(cluster=cluster, dir=server_dir, odb=odb, fake=fake, rabbit=rabbit, procs=procs)
    finally:
        try:
            for p in procs:
                stop_process(p)
            rabbit.close()
        finally:  # the cluster's keys go whatever the broker did meanwhile
            fake.close()
            odb.dispose()
            cleanup_redis(cluster)


def _channel(env, queue: str, service: str = "demo.echo", **extra) -> str:
    if not connectors.list_all(env["odb"], env["cluster"], "amqp-def"):
        connectors.create(env["odb"], env["cluster"], "amqp-def", {"name": "rabbit", "password": "guest"})
    name = f"ch-{uuid.uuid4().hex[:6]}"
    connectors.create(
        env["odb"],
        env["cluster"],
        "amqp-channel",
        {"name": name, "def": "rabbit", "queue": queue, "service": service, **extra},
    )
    return name


def _start(env, name: str, epoch: int = 1, stack_bytes: int | None = None):
    proc = start_connector(env["dir"], "amqp-channel", name, epoch, stack_bytes)
    env["procs"].append(proc)
    return proc


def _stats(env, name: str) -> dict:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    return connector_stats.read(client, env["cluster"], [f"amqp-channel:{name}"]).get(
        f"amqp-channel:{name}", {}
    )


def test_messages_reach_the_service_and_are_acked(env):
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, prefetch=5)
    proc = _start(env, name)
    for i in range(30):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    wait_for(lambda: len(env["fake"].bodies("demo.echo")) >= 30, timeout=60, what="30 invocations")
    got = sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.echo"))
    assert got == list(range(30))
    wait_for(lambda: env["rabbit"].count(queue) == 0, what="queue drained")
    wait_for(lambda: _stats(env, name).get("messages_out") == 30, what="stats show 30 out")
    stats = _stats(env, name)
    assert stats["state"] == "running" and stats["pid"] == proc.pid
    assert stop_process(proc) == 0


def test_poison_and_failing_messages_are_parked(env):
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, service="demo.broken", max_deliveries=3)
    env["fake"].fail.add("demo.broken")
    _start(env, name)
    env["rabbit"].publish(queue, b"{not json", message_id="poison-1")
    env["rabbit"].publish(queue, json.dumps({"will": "fail"}), message_id="fails-1")
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 2, timeout=60, what="two parked messages")
    parked = {p.message_id: (p.headers, body) for p, body in env["rabbit"].get_all(parked_q)}
    assert parked["poison-1"][1] == b"{not json"
    assert "not valid JSON" in parked["poison-1"][0]["x-zato-parked-reason"]
    assert parked["fails-1"][0]["x-zato-deliveries"] == 3
    assert "500" in parked["fails-1"][0]["x-zato-parked-reason"]
    assert env["rabbit"].count(queue) == 0
    # said once the broker confirmed the parked copy, which the count above may see first
    wait_for(lambda: all(f"{m} parked" in log_text(env["dir"]) for m in ("poison-1", "fails-1")), 10,
             what="both parkings in the log")  # fmt: skip
    wait_for(lambda: _stats(env, name).get("parked") == 2, what="stats show 2 parked")
    stats = _stats(env, name)
    assert stats["last_error"].startswith(f"parked a message in {parked_q!r}")
    assert stats["messages_in"] == 4  # the poison message once, the failing one three times


def test_a_message_id_of_the_publishers_choosing_cannot_forge_a_log_line(env):
    """Any publisher chooses a message's id, which the log line of its parking quotes. Before,
    an id with a newline wrote a second line of its choosing into logs/server.log (here a
    forged CRITICAL), and an escape sequence went to the terminal as is. Now the id is said on
    its line, escaped, and the parked message keeps its id as sent."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue)
    _start(env, name)
    forged = "2026-12-06 00:00:00,000 CRITICAL 1 zato.server: forged"
    evil = f"poison\n{forged}\x1b[31m"
    env["rabbit"].publish(queue, b"{not json", message_id=evil)
    env["rabbit"].publish(queue, json.dumps({"n": 1}), message_id="next-1")
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=30, what="the poison message parked")
    wait_for(lambda: env["fake"].bodies("demo.echo") == [b'{"n": 1}'], timeout=30, what="the next message")
    ((props, body),) = env["rabbit"].get_all(parked_q)
    assert props.message_id == evil and body == b"{not json"
    lines = log_text(env["dir"]).splitlines()
    assert not [ln for ln in lines if ln.startswith(forged[:23])], "a line of the publisher's making"
    assert "\x1b" not in log_text(env["dir"])
    (said,) = [ln for ln in lines if "parked in queue" in ln]
    assert f"message poison\\n{forged}\\x1b[31m parked in queue {parked_q!r}" in said


def test_a_body_nested_too_deeply_to_parse_is_parked_as_poison(env):
    """A JSON body nested deeper than a parser goes is poison like a malformed one: parked at
    once, and the messages behind it flow. Before, the check raised RecursionError, not
    ValueError: the connector crashed on it, and every restart took the same message again."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue)
    proc = _start(env, name)
    env["rabbit"].publish(queue, b"[" * 100_000 + b"]" * 100_000, message_id="deep-1")
    env["rabbit"].publish(queue, json.dumps({"n": 1}), message_id="next-1")
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=30, what="the deep body parked")
    wait_for(lambda: env["fake"].bodies("demo.echo") == [b'{"n": 1}'], timeout=30, what="the next message")
    ((props, body),) = env["rabbit"].get_all(parked_q)
    assert props.message_id == "deep-1" and len(body) == 200_000
    assert "nested too deeply" in props.headers["x-zato-parked-reason"]
    assert env["rabbit"].count(queue) == 0
    assert proc.poll() is None
    assert stop_process(proc) == 0


def test_a_body_nested_as_deep_as_the_check_goes_runs_on_a_host_with_a_small_stack(env):
    """The connector decodes as deep as a frame nests (decode_any_delivery), so its JSON check
    goes some 44,000 levels deep too, which takes 4-6 MB of C stack. On a host whose stack
    limit is 2 MB (ulimit -s 2048), before, that body killed the connector (SIGSEGV) on every
    delivery; the consuming thread now has a stack of its own."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    deep = b'{"a":' * 43_000 + b"1" + b"}" * 43_000
    env["rabbit"].publish(queue, deep)
    env["rabbit"].publish(queue, json.dumps({"n": 1}))
    name = _channel(env, queue)
    proc = _start(env, name, stack_bytes=2 * 1024 * 1024)
    wait_for(lambda: len(env["fake"].bodies("demo.echo")) == 2, timeout=30, what="both messages")
    assert sorted(env["fake"].bodies("demo.echo"), key=len) == [b'{"n": 1}', deep]
    assert proc.poll() is None
    assert stop_process(proc) == 0


def test_a_message_the_service_refuses_as_bad_input_is_parked_at_once(env):
    """A 400 (missing or malformed input) is the message's own fault: parked at its first
    delivery with the service's reason, not retried max_deliveries times (before: 3 tries)."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, service="demo.picky", max_deliveries=3)
    env["fake"].reject.add("demo.picky")
    _start(env, name)
    env["rabbit"].publish(queue, json.dumps({"no": "name"}), message_id="bad-1")
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=60, what="the message parked")
    ((props, body),) = env["rabbit"].get_all(parked_q)
    assert props.message_id == "bad-1" and json.loads(body) == {"no": "name"}
    assert "refused it as bad input (400)" in props.headers["x-zato-parked-reason"]
    assert len(env["fake"].bodies("demo.picky")) == 1  # one invocation, no retries
    wait_for(lambda: _stats(env, name).get("parked") == 1, what="stats show 1 parked")
    assert _stats(env, name)["messages_in"] == 1


def test_stale_epoch_stops_the_connector_without_acking(env):
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue)
    proc = _start(env, name, epoch=1)
    env["rabbit"].publish(queue, json.dumps({"n": 1}))
    wait_for(lambda: env["fake"].bodies("demo.echo"), what="first message")
    set_epoch(env["cluster"], 2)  # another server took the lease
    assert wait_exit(proc) == EXIT_LEASE_LOST
    env["rabbit"].publish(queue, json.dumps({"n": 2}))
    assert env["rabbit"].count(queue) == 1  # left for the new holder
    assert len(env["fake"].bodies("demo.echo")) == 1
    assert "lease lost" in log_text(env["dir"])


def test_invocations_run_concurrently_up_to_max_in_flight(env):
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, service="demo.slow", prefetch=8, max_in_flight=4)
    env["fake"].held.add("demo.slow")
    proc = _start(env, name)
    for i in range(12):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    wait_for(lambda: env["fake"].active == 4, timeout=60, what="four invocations held at once")
    assert env["rabbit"].count(queue) == 4  # 8 prefetched: 4 running, 4 waiting for a slot
    env["fake"].release.set()
    wait_for(lambda: len(env["fake"].bodies("demo.slow")) == 12, timeout=60, what="12 invocations")
    wait_for(lambda: env["rabbit"].count(queue) == 0, what="all acked")
    assert env["fake"].peak == 4
    assert sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.slow")) == list(range(12))
    assert stop_process(proc) == 0


def test_a_server_without_batches_gets_the_messages_one_by_one(env):
    # A backlog at prefetch 40 makes the connector send several messages per call; a server
    # from before batches answers 404 to that, and each message is sent again alone: none is
    # failed or lost for it.
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    for i in range(60):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    name = _channel(env, queue, prefetch=40)
    proc = _start(env, name)
    wait_for(lambda: env["rabbit"].count(queue) == 0, timeout=60, what="all acked")
    wait_for(lambda: len(env["fake"].bodies("demo.echo")) >= 60, timeout=30, what="60 invocations")
    assert sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.echo")) == list(range(60))
    assert env["fake"].batches >= 1
    assert env["rabbit"].count(queue + ".zato-parked") == 0
    assert stop_process(proc) == 0
    assert "answered a batch with 404; invoking one by one" in log_text(env["dir"])


def test_a_batch_answer_unusable_after_the_service_ran_does_not_run_it_again_without_its_metadata(env):
    """Before: a server that ran a message and then gave no usable answer (a 200 whose results
    are malformed: a server of another release, an answer cut) made the connector invoke it
    again at once, alone and without its metadata (self.request.amqp, so ack()/reject() did not
    apply): it ran twice. Now it is a failed delivery: at max_deliveries 1 it is parked, run once."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    env["fake"].serves_messages = True
    env["fake"].unusable_answers.append((200, b'{"results": [[200, "", "defer-for-now"]]}'))
    name = _channel(env, queue, service="demo.once", max_deliveries=1)
    _start(env, name)
    env["rabbit"].publish(queue, json.dumps({"n": 1}), message_id="once-1")
    parked = queue + ".zato-parked"
    settled = lambda: env["rabbit"].count(parked) == 1 or _stats(env, name).get("messages_out") == 1  # noqa: E731
    wait_for(settled, timeout=30, what="the message settled")
    assert env["fake"].bodies("demo.once") == [b'{"n": 1}']  # run once, not twice
    assert env["rabbit"].count(parked) == 1
    assert env["rabbit"].count(queue) == 0
    ((props, _),) = env["rabbit"].get_all(parked)
    assert "it may have run there, so not run again at once" in props.headers["x-zato-parked-reason"]
    assert "gave no usable answer to a batch of 1" in log_text(env["dir"])


def test_an_answer_cut_after_the_service_ran_is_a_failed_delivery_not_run_again_at_once(env):
    """The server runs the message, sends its answer's headers and half its body, then closes the
    connection (its worker killed after the service ran). Before: 'server cannot be reached', so
    the message went back uncounted (no live server) and ran again at once, for as long as the
    server did so. Now it is a failed delivery: at max_deliveries 1 it is parked, run once."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    env["fake"].serves_messages = True
    env["fake"].cut.add("demo.cut")
    name = _channel(env, queue, service="demo.cut", max_deliveries=1)
    _start(env, name)
    env["rabbit"].publish(queue, json.dumps({"n": 3}), message_id="cut-3")
    parked = queue + ".zato-parked"
    settled = lambda: env["rabbit"].count(parked) == 1 or len(env["fake"].bodies("demo.cut")) > 1  # noqa: E731
    wait_for(settled, timeout=30, what="the message parked or run again")
    assert env["fake"].bodies("demo.cut") == [b'{"n": 3}']  # run once, not again at once
    assert env["rabbit"].count(parked) == 1
    ((props, _),) = env["rabbit"].get_all(parked)
    assert "the answer was cut (IncompleteRead" in props.headers["x-zato-parked-reason"]
    assert "began its answer and the connection failed before its end" in log_text(env["dir"])


def test_a_500_to_a_batch_after_its_service_ran_is_a_failed_delivery_that_keeps_its_metadata(env):
    """Before: a 500 to a batch of messages (which may come after they ran) made the connector
    invoke each again at once without its metadata. Now each is a failed delivery: run again
    after the channel's pause, with its metadata (its delivery count among it), then acked."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    env["fake"].serves_messages = True
    env["fake"].unusable_answers.append((500, b'{"zato_env": {"details": "internal server error"}}'))
    name = _channel(env, queue, service="demo.again")
    _start(env, name)
    env["rabbit"].publish(queue, json.dumps({"n": 2}), message_id="again-2")
    wait_for(lambda: _stats(env, name).get("messages_out") == 1, timeout=30, what="the message served")
    assert env["fake"].bodies("demo.again") == [b'{"n": 2}', b'{"n": 2}']
    metas = [json.loads(meta) for meta in env["fake"].metas]
    assert [meta["properties"]["message_id"] for meta in metas] == ["again-2", "again-2"]
    assert metas[1]["properties"]["headers"]["x-zato-deliveries"] == 1
    assert env["rabbit"].count(queue) == 0
    assert env["rabbit"].count(queue + ".zato-parked") == 0
    assert "delivery 1 of 5 failed, runs again in 0.5 s" in log_text(env["dir"])


def test_lease_loss_with_invocations_in_flight_leaves_the_rest_unacked(env):
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, service="demo.slow", prefetch=6, max_in_flight=4)
    env["fake"].held.add("demo.slow")
    proc = _start(env, name, epoch=1)
    for i in range(6):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    wait_for(lambda: env["fake"].active == 4, timeout=60, what="four invocations held at once")
    set_epoch(env["cluster"], 2)  # another server took the lease while four calls run
    env["fake"].release.set()  # they were accepted with epoch 1: their answers are 200
    assert wait_exit(proc) == EXIT_LEASE_LOST
    # The four answered ones were acked; the two never started came back for the new holder.
    assert len(env["fake"].bodies("demo.slow")) == 4
    wait_for(lambda: env["rabbit"].count(queue) == 2, what="two messages back in the queue")


class FarFuture(datetime.datetime):
    """A header timestamp past the year 9999, as a client with 64-bit times sends for "never"
    (Java's new Date(Long.MAX_VALUE)); pika encodes what utctimetuple() says, which a real
    datetime cannot."""

    def utctimetuple(self) -> time.struct_time:
        return time.struct_time((9999, 12, 1000, 0, 0, 0, 0, 1, 0))  # day 1000 of December 9999


def test_a_delivery_pika_cannot_decode_is_parked_as_sent_and_the_queue_flows(env):
    """pika ends every connection that reads this delivery (ValueError: year 10002 is out of
    range, while decoding its header frame), and the broker gives it back at the head of the
    queue. Before, the channel reconnected every 0.5 s for good and nothing behind it ran. Now
    it is parked with its properties as the broker sent them and the reason; the messages
    before and after it run."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    env["rabbit"].publish(queue, json.dumps({"n": 0}))
    headers = {"x-expires": FarFuture(2000, 1, 1), "x-order": 7}
    env["rabbit"].publish(queue, b'{"n": -1}', headers=headers, message_id="far", correlation_id="c-far")
    for i in (1, 2):
        env["rabbit"].publish(queue, json.dumps({"n": i}))
    name = _channel(env, queue, prefetch=3)
    proc = _start(env, name)
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=30, what="the undecodable delivery parked")
    wait_for(lambda: len(env["fake"].bodies("demo.echo")) >= 3, timeout=30, what="the other three")
    assert sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.echo")) == [0, 1, 2]
    wait_for(lambda: env["rabbit"].count(queue) == 0, what="all settled")
    stats = _stats(env, name)
    assert stats["parked"] == 1 and "pika cannot decode its properties" in stats["last_error"]
    assert "year 10002 is out of range" in log_text(env["dir"])
    # Parked as sent: reading it back takes a reader that skips what pika cannot decode, so
    # read the raw properties over a link of the same kind the connector used.
    params = pika.ConnectionParameters("127.0.0.1", credentials=pika.PlainCredentials("guest", "guest"))
    with amqp_rescue.Link(params) as link:
        got = link.call(pika.spec.Basic.Get(queue=parked_q, no_ack=True), pika.spec.Basic.GetOk)
        raw_props, body = link.content()
    assert body == b'{"n": -1}' and got.routing_key == parked_q
    for kept in (b"far", b"c-far", b"x-expires", b"x-order", b"x-zato-parked-reason"):
        assert kept in raw_props
    assert b"year 10002 is out of range" in raw_props
    assert proc.poll() is None
    assert stop_process(proc) == 0


def test_headers_nested_as_deep_as_a_frame_holds_are_read_and_the_message_runs(env):
    """Headers nested as deep as one frame can carry (another client published them; pika
    itself only with a raised recursion limit). Before, pika's decoder recursed out at some 500
    levels: every connection died reading that frame, and the message held its queue for good.
    Now the message runs and is acked; the deep header is left out of what its service reads
    (the log names it), and the messages behind it flow."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    deep = nested(21_000, key="")  # 6 bytes a level: about all of a 128 KiB frame
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)  # what a hostile publisher would do
    try:
        env["rabbit"].publish(queue, b'{"n": 0}', headers={"x-deep": deep, "x-ok": 1}, message_id="deep-h")
    finally:
        sys.setrecursionlimit(limit)
    env["rabbit"].publish(queue, json.dumps({"n": 1}))
    name = _channel(env, queue)
    proc = _start(env, name)
    wait_for(lambda: len(env["fake"].bodies("demo.echo")) == 2, timeout=30, what="both messages")
    assert sorted(env["fake"].bodies("demo.echo")) == [b'{"n": 0}', b'{"n": 1}']
    wait_for(lambda: env["rabbit"].count(queue) == 0, what="both acked")
    assert "message deep-h: header(s) 'x-deep' nest deeper than 100 levels" in log_text(env["dir"])
    assert not _stats(env, name).get("last_error")
    assert stop_process(proc) == 0


def test_a_service_slower_than_the_channel_timeout_is_a_failed_delivery_and_parked(env):
    """A service that does not answer within the channel's timeout: before, the connector gave
    up after a hard-coded 30 s, said "no live server answered (... TimeoutError: timed out)"
    and gave the message back uncounted, so it ran again and again, never parked. Now the
    channel's `timeout` says how long to wait; a delivery not answered in time counts as
    failed and is parked after max_deliveries with the reason."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, service="demo.slow", prefetch=1, max_deliveries=2, timeout="1")
    env["fake"].held.add("demo.slow")  # never answers until the test ends
    _start(env, name)
    env["rabbit"].publish(queue, json.dumps({"n": 1}), message_id="slow-1")
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=60, what="the slow message parked")
    ((props, _),) = env["rabbit"].get_all(parked_q)
    assert props.message_id == "slow-1" and props.headers["x-zato-deliveries"] == 2
    assert "the service did not answer within 1 s" in props.headers["x-zato-parked-reason"]
    wait_for(lambda: _stats(env, name).get("failures") == 2, what="two failed deliveries counted")
    log = log_text(env["dir"])
    assert "no live server" not in log
    assert "did not answer within 1 s" in log
    assert env["rabbit"].count(queue) == 0


def test_a_message_parked_after_its_parking_queue_was_deleted_is_not_lost(env):
    """An operator deleted the parking queue (rabbitmqctl delete_queue Q.zato-parked). Before,
    the next poison message was 'parked in queue Q.zato-parked', a queue that was gone: the
    broker confirmed the unroutable copy, the original was acked, the message lost. Now the
    copy is published mandatory: returned, the parking queue is declared again and the
    message lands in it."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue)
    _start(env, name)
    parked_q = queue + ".zato-parked"
    wait_for(lambda: _stats(env, name).get("state") == "running", timeout=30, what="channel running")
    env["rabbit"].ch.queue_delete(parked_q)
    env["rabbit"].publish(queue, b"{not json", message_id="poison-2")
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=30, what="the poison message parked")
    ((props, body),) = env["rabbit"].get_all(parked_q)
    assert props.message_id == "poison-2" and body == b"{not json"
    assert env["rabbit"].count(queue) == 0


def test_a_channel_whose_queue_was_deleted_consumes_it_again(env):
    """The channel's own queue deleted (rabbitmqctl delete_queue Q), then declared again and a
    message published: before, the broker's consumer cancel was ignored and the message sat
    there with no consumer while the status said RUNNING, no error. Now the channel says so
    (WARNING, last_error) and reconnects, consuming the queue again."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue)
    _start(env, name)
    wait_for(lambda: _stats(env, name).get("state") == "running", timeout=30, what="channel running")
    env["rabbit"].ch.queue_delete(queue)
    env["rabbit"].queue(queue)
    env["rabbit"].publish(queue, json.dumps({"n": 7}))
    wait_for(
        lambda: env["fake"].bodies("demo.echo") == [b'{"n": 7}'], timeout=30, what="the message consumed"
    )
    assert "cancelled the consumer" in (_stats(env, name).get("last_error") or "")
    assert "cancelled the consumer of queue" in log_text(env["dir"])


def test_a_queue_the_broker_refuses_is_retried_with_back_off_and_says_why(env):
    """A queue named amq.* is refused by RabbitMQ (ACCESS_REFUSED). Before, the channel
    connected again twice a second forever, two WARNING lines each time ('connection lost');
    now each attempt says what failed and the pauses grow to the documented 5 s."""
    queue = f"amq.zt-{uuid.uuid4().hex[:8]}"
    name = _channel(env, queue)
    _start(env, name)
    wait_for(lambda: "reconnecting in 5.0s" in log_text(env["dir"]), timeout=60, what="the longest pause")
    log = log_text(env["dir"])
    assert f"cannot consume queue {queue!r}: (403) ACCESS_REFUSED" in log
    assert "reconnecting in 0.5s" in log and "reconnecting in 2.5s" in log
    assert "connection lost" not in log
    assert "ACCESS_REFUSED" in (_stats(env, name).get("last_error") or "")


def test_a_reconnecting_channel_logs_one_line_per_attempt_and_reasons_are_text(env):
    """Before, every reconnect attempt added 5-6 pika ERROR lines and tracebacks to server.log,
    and a parked message's reason embedded a Python bytes repr (answered 500 ...: b'...')."""
    refused = _channel(env, f"amq.zt-{uuid.uuid4().hex[:8]}")
    _start(env, refused)
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    failing = _channel(env, queue, service="demo.broken", max_deliveries=1)
    env["fake"].fail.add("demo.broken")
    _start(env, failing)
    env["rabbit"].publish(queue, json.dumps({"n": 1}))
    parked_q = queue + ".zato-parked"
    wait_for(lambda: env["rabbit"].count(parked_q) == 1, timeout=30, what="the failing message parked")
    ((props, _),) = env["rabbit"].get_all(parked_q)
    assert props.headers["x-zato-parked-reason"].endswith(
        "answered 500 on " + f"127.0.0.1:{env['fake'].port}" + ': {"status": 500}'
    )
    wait_for(lambda: log_text(env["dir"]).count("ACCESS_REFUSED") >= 3, timeout=30, what="three attempts")
    log = log_text(env["dir"])
    assert " pika." not in log and "Traceback" not in log


def test_a_failed_delivery_runs_again_after_a_pause_so_a_service_back_soon_gets_it(env):
    """Before: the five deliveries of a message whose service failed (a deploy under way, a
    server restarting) ran within about 20 ms, and it was parked before the service was back."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue, service="demo.back-soon", max_deliveries=5)
    env["fake"].fail.add("demo.back-soon")
    _start(env, name)
    env["rabbit"].publish(queue, json.dumps({"n": 1}), message_id="back-soon-1")
    wait_for(lambda: "delivery 1 of 5 failed" in log_text(env["dir"]), timeout=30)
    env["fake"].fail.discard("demo.back-soon")  # the service is back
    wait_for(lambda: _stats(env, name).get("messages_out") == 1, timeout=30, what="the message served")
    assert env["rabbit"].count(queue + ".zato-parked") == 0
    assert env["rabbit"].count(queue) == 0
    assert "parked" not in log_text(env["dir"])
    assert "delivery 1 of 5 failed, runs again in 0.5 s" in log_text(env["dir"])


def test_the_parking_queue_depth_is_the_brokers_and_outlives_a_restart(env):
    """Before: only the process's own `parked` counter, 0 again after a restart or a takeover
    while the parking queue still held the messages (an 'alert on parked > 0' missed them)."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}")
    name = _channel(env, queue)
    proc = _start(env, name)
    for n in range(3):
        env["rabbit"].publish(queue, b"{not json", message_id=f"poison-{n}")
    wait_for(lambda: _stats(env, name).get("parking_queue") == 3, timeout=30, what="3 in the parking queue")
    stop_process(proc)
    env["procs"].remove(proc)
    _start(env, name)
    wait_for(
        lambda: _stats(env, name).get("messages_in") == 0 and _stats(env, name).get("state") == "running", 30
    )
    stats = wait_for(lambda: (s := _stats(env, name)).get("parking_queue") == 3 and s, timeout=30)
    assert stats["parked"] == 0  # the new process's own counter
