"""`zato conn replay-parked amqp-channel`: an AMQP channel's parked messages back on its queue,
against real RabbitMQ (the channel's connector is not running: what lands in its queue stays
there to be looked at). With a cluster and its service mended: tests/integration/
test_amqp_cluster.py; from the dashboard: tests/integration/test_dashboard.py."""

from __future__ import annotations

import json
import sys
import types
import uuid

import pytest

from tests.conn_support import free_port, rabbitmqctl
from tests.integration import test_amqp_channel as channel_tests
from tests.support import zato
from zato.connector.amqp_replay import BrokerUnreachable, ReplayError, replay_channel
from zato.dashboard import app as dashboard_app
from zato.odb import connectors

env = channel_tests.env  # the fixture: a server dir, its ODB and cluster, RabbitMQ
FarFuture = channel_tests.FarFuture


def _parked(env, n: int, arguments: dict | None = None) -> tuple[str, str]:
    """A channel's queue and its parking queue holding `n` messages parked as the channel
    parks them (x-zato-deliveries, x-zato-parked-reason); the channel's name and its queue."""
    queue = env["rabbit"].queue(f"zt-{uuid.uuid4().hex[:8]}", arguments)
    env["rabbit"].ch.queue_declare(queue + ".zato-parked", durable=True)
    for i in range(n):
        headers = {"x-order": i, "x-zato-deliveries": 5, "x-zato-parked-reason": "failed 5 times, last: 500"}
        env["rabbit"].publish(
            queue + ".zato-parked",
            json.dumps({"n": i}),
            headers=headers,
            message_id=f"p{i}",
            correlation_id=f"c{i}",
            content_type="application/json",
        )
    return channel_tests._channel(env, queue), queue


def replay(env, name: str, *more: str):
    return zato("conn", "replay-parked", "amqp-channel", env["dir"], "--name", name, *more, check=False)


def one_line_error(proc) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zato: error: "), proc.stderr
    return lines[0].removeprefix("zato: error: ")


def test_replay_moves_the_oldest_first_with_body_and_properties_and_stops_at_the_limit(env):
    name, queue = _parked(env, 5)
    parked_q = queue + ".zato-parked"
    proc = replay(env, name, "--limit", "2")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == (
        f"amqp-channel {name}: 2 parked message(s) moved back to queue {queue!r}; 3 left in {parked_q!r}\n"
    )
    back = env["rabbit"].get_all(queue)
    assert [json.loads(body) for _, body in back] == [{"n": 0}, {"n": 1}]
    for i, (props, _) in enumerate(back):
        # As published, less what parking added: the channel counts its deliveries from 0 again.
        assert props.headers == {"x-order": i}
        assert (props.message_id, props.correlation_id) == (f"p{i}", f"c{i}")
        assert props.content_type == "application/json" and props.delivery_mode == 2

    proc = replay(env, name)
    assert proc.stdout == (
        f"amqp-channel {name}: 3 parked message(s) moved back to queue {queue!r}; 0 left in {parked_q!r}\n"
    )
    assert [json.loads(body)["n"] for _, body in env["rabbit"].get_all(queue)] == [2, 3, 4]
    assert env["rabbit"].count(parked_q) == 0


def test_a_message_pika_cannot_decode_stays_parked_and_is_reported(env):
    name, queue = _parked(env, 1)
    parked_q = queue + ".zato-parked"
    far = {"x-expires": FarFuture(2000, 1, 1), "x-zato-parked-reason": "pika cannot decode its properties"}
    env["rabbit"].publish(parked_q, b'{"n": -1}', headers=far, message_id="far")
    env["rabbit"].publish(parked_q, json.dumps({"n": 2}), message_id="p2")
    proc = replay(env, name)
    assert proc.returncode == 0
    assert proc.stdout == (
        f"amqp-channel {name}: 2 parked message(s) moved back to queue {queue!r}; 1 left in {parked_q!r}\n"
    )
    assert proc.stderr == (
        "warning: 1 message(s) pika cannot decode (ValueError: year 10002 is out of range) stay in"
        f" {parked_q!r}: move or delete them with the broker's own tools\n"
    )
    assert [json.loads(body)["n"] for _, body in env["rabbit"].get_all(queue)] == [0, 2]
    assert env["rabbit"].count(parked_q) == 1


def test_a_message_pika_cannot_decode_that_comes_round_again_is_counted_once(env):
    """A parked message that expires (its publisher's per-message TTL, kept when parked) leaves
    the parking queue once it reaches the head, so the one pika cannot decode, moved to the tail
    behind it, came round to the same replay again. Before: it was moved and counted again, and
    the replay said '2 message(s) pika cannot decode' of one. Now the replay sees it came round
    (the parking queue holds only what it moved past) and stops there, counting it once."""
    name, queue = _parked(env, 0)
    parked_q = queue + ".zato-parked"
    far = {"x-expires": FarFuture(2000, 1, 1)}
    env["rabbit"].publish(parked_q, b'{"n": -1}', headers=far, message_id="far")
    env["rabbit"].publish(parked_q, json.dumps({"n": 1}), message_id="gone", expiration="1")
    proc = replay(env, name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"amqp-channel {name}: 0 parked message(s) moved back to queue {queue!r}; 1 left in {parked_q!r}\n"
    )
    assert proc.stderr == (
        "warning: 1 message(s) pika cannot decode (ValueError: year 10002 is out of range) stay in"
        f" {parked_q!r}: move or delete them with the broker's own tools\n"
    )
    assert env["rabbit"].count(parked_q) == 1


def test_two_alike_messages_pika_cannot_decode_are_two(env):
    """Two parked messages alike byte for byte, which pika cannot decode, are two (not one that
    came round), and the message behind them is moved back."""
    name, queue = _parked(env, 0)
    parked_q = queue + ".zato-parked"
    far = {"x-expires": FarFuture(2000, 1, 1)}
    for _ in range(2):
        env["rabbit"].publish(parked_q, b'{"n": -1}', headers=far, message_id="far")
    env["rabbit"].publish(parked_q, json.dumps({"n": 1}), message_id="p1")
    proc = replay(env, name)
    assert proc.stdout == (
        f"amqp-channel {name}: 1 parked message(s) moved back to queue {queue!r}; 2 left in {parked_q!r}\n"
    )
    assert proc.stderr.startswith("warning: 2 message(s) pika cannot decode"), proc.stderr
    assert [json.loads(body)["n"] for _, body in env["rabbit"].get_all(queue)] == [1]


def test_a_copy_the_broker_refuses_leaves_its_parked_message_and_stops_the_replay(env):
    # The channel's queue takes one more message, then the broker nacks publishes to it.
    name, queue = _parked(env, 3, {"x-max-length": 1, "x-overflow": "reject-publish"})
    parked_q = queue + ".zato-parked"
    error = one_line_error(replay(env, name))
    assert error == (
        f"amqp-channel {name}: stopped: the broker refused it when message p1 was published to queue"
        f" {queue!r}; it stays parked; 1 moved back to {queue!r} before, the rest stay in {parked_q!r}"
    )
    assert [p.message_id for p, _ in env["rabbit"].get_all(parked_q)] == ["p1", "p2"]  # in their order
    assert [p.message_id for p, _ in env["rabbit"].get_all(queue)] == ["p0"]


@pytest.mark.parametrize("denied", ["write", "read"])
def test_a_replay_the_broker_refuses_permission_for_is_a_refusal_not_a_broker_away(env, denied):
    """Before: a publish (or get) the broker closed the channel over, 403 ACCESS_REFUSED for a
    user without write permission on the channel's queue (or read on the parking queue), was
    'stopped on the AMQP broker ...' (BrokerUnreachable: the dashboard's 503, as if the broker
    were down; '... may reach the channel twice'). Now it is the broker's refusal (ReplayError,
    the dashboard's 502) naming what it refused, and the parked messages stay, in their order."""
    user, password = f"zt-mq2-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    rabbitmqctl("add_user", user, password)
    try:
        write, read = ("^$", ".*") if denied == "write" else (".*", "^$")
        rabbitmqctl("set_permissions", "-p", "/", user, ".*", write, read)
        connectors.create(
            env["odb"],
            env["cluster"],
            "amqp-def",
            {"name": "limited", "username": user, "password": password},
        )
        queue = env["rabbit"].queue(f"zt-mq2-{uuid.uuid4().hex[:8]}")
        parked_q = queue + ".zato-parked"
        env["rabbit"].ch.queue_declare(parked_q, durable=True)
        for i in range(2):
            env["rabbit"].publish(parked_q, json.dumps({"n": i}), message_id=f"p{i}")
        name = f"ch-{uuid.uuid4().hex[:6]}"
        definition = {"name": name, "def": "limited", "queue": queue, "service": "demo.echo"}
        connectors.create(env["odb"], env["cluster"], "amqp-channel", definition)
        with pytest.raises(ReplayError) as caught:
            replay_channel(env["odb"], env["cluster"], name)
        assert not isinstance(caught.value, BrokerUnreachable), caught.value
        assert dashboard_app.failure("replay", caught.value, env["cluster"])[0] == 502
        error = str(caught.value)
        what = (
            f"the publish of message p0 to queue {queue!r}"
            if denied == "write"
            else f"a get from {parked_q!r}"
        )
        assert (
            f"stopped: the broker amqp://{user}@127.0.0.1:5672/ (definition 'limited') refused {what}: (403)"
            in error
        )
        assert "ACCESS_REFUSED" in error and error.endswith("; it stays parked; nothing moved"), error
        assert [p.message_id for p, _ in env["rabbit"].get_all(parked_q)] == ["p0", "p1"]
        assert env["rabbit"].count(queue) == 0
    finally:
        rabbitmqctl("delete_user", user)


def test_what_cannot_be_replayed_is_one_clear_line(env):
    cluster, odb = env["cluster"], env["odb"]
    name, queue = _parked(env, 1)
    assert one_line_error(replay(env, "nosuch")) == f"no amqp-channel named 'nosuch' in cluster {cluster}"
    assert one_line_error(replay(env, "rabbit")) == (
        f"no amqp-channel named 'rabbit' in cluster {cluster}"
        " ('rabbit' is an amqp-def: only AMQP channels park messages)"
    )
    port = free_port()  # nothing listens there: the broker is down
    connectors.create(odb, cluster, "amqp-def", {"name": "down", "password": "guest", "port": port})
    connectors.create(odb, cluster, "amqp-def", {"name": "wrong", "password": "not-guest"})
    for definition in ("down", "wrong"):
        connectors.create(
            odb,
            cluster,
            "amqp-channel",
            {"name": f"on-{definition}", "def": definition, "queue": "q", "service": "s"},
        )
    error = one_line_error(replay(env, "on-down"))
    assert error.startswith(
        f"amqp-channel on-down: cannot connect to the AMQP broker amqp://guest@127.0.0.1:{port}/"
        " (definition 'down'): "
    )
    assert "nothing moved" in error
    assert one_line_error(replay(env, "on-wrong")) == (
        "amqp-channel on-wrong: the AMQP broker amqp://guest@127.0.0.1:5672/ (definition 'wrong') refused"
        " the login: check the user name and password of amqp-def 'wrong'; nothing moved"
    )
    usage = replay(env, name, "--limit", "0")
    assert usage.returncode == 2 and "--limit: '0': give a whole number of 1 or more" in usage.stderr
    assert env["rabbit"].count(queue + ".zato-parked") == 1  # still parked


def test_an_outgoing_connections_parked_messages_go_back_behind_those_waiting(env):
    """The same command for outgoing connections, whose refused messages are parked in Redis:
    before, only the dashboard's Re-send parked put them back."""
    from zato.config.settings import load_server_settings
    from zato.coord.client import connect
    from zato.coord.queues import OutQueue

    cluster, odb = env["cluster"], env["odb"]
    if not connectors.list_all(odb, cluster, "amqp-def"):
        connectors.create(odb, cluster, "amqp-def", {"name": "rabbit", "password": "guest"})
    connectors.create(odb, cluster, "amqp-outgoing", {"name": "out1", "def": "rabbit"})
    client = connect(load_server_settings(env["dir"]).redis)
    queue = OutQueue(client, cluster, "amqp", "out1")
    try:
        queue.push('{"body": "waiting"}')
        client.lpush(queue.parked, '{"body": "refused-1"}', '{"body": "refused-2"}')
        proc = zato("conn", "replay-parked", "amqp-outgoing", env["dir"], "--name", "out1")
        assert (
            proc.stdout
            == "amqp-outgoing out1: 2 parked message(s) queued again, behind those waiting to go out\n"
        )
        assert queue.depth() == (3, 0) and client.llen(queue.parked) == 0
        # the dashboard's "ibmmq" alias of ibm-mq: it read a Redis list nothing writes
        from zato.dashboard import actions

        connectors.create(
            odb, cluster, "ibm-mq-def", {"name": "qm", "username": "app", "password": "hunter2"}
        )
        connectors.create(odb, cluster, "ibm-mq-outgoing", {"name": "mq1", "def": "qm", "queue": "Q"})
        mq = OutQueue(client, cluster, "ibm-mq", "mq1")
        client.lpush(mq.parked, '{"body": "refused"}')
        settings = types.SimpleNamespace(cluster=cluster)
        assert actions.resend_parked(settings, client, "ibmmq", "mq1", odb).endswith(
            "1 parked message(s) queued again"
        )
        assert mq.depth() == (1, 0)
        cmd = ("conn", "replay-parked", "ibm-mq-outgoing", env["dir"], "--name", "out1")
        assert (
            one_line_error(zato(*cmd, check=False)) == f"no ibm-mq-outgoing named 'out1' in cluster {cluster}"
        )
        limited = zato(
            "conn",
            "replay-parked",
            "amqp-outgoing",
            env["dir"],
            "--name",
            "out1",
            "--limit",
            "1",
            check=False,
        )
        assert "--limit: amqp-outgoing puts back all its parked messages at once" in one_line_error(limited)
    finally:
        client.close()


def test_the_dashboard_replays_at_most_its_limit_in_one_click_and_says_how_many_are_left(env):
    from zato.dashboard import actions

    name, queue = _parked(env, 3)
    settings = types.SimpleNamespace(cluster=env["cluster"], tls_ca_file="")
    limit = sys.getrecursionlimit()
    said = actions.replay_parked(settings, env["odb"], name, limit=2)
    assert sys.getrecursionlimit() == limit  # the dashboard's, raised for the replay alone
    parked_q = queue + ".zato-parked"
    assert (
        said
        == f"amqp-channel {name}: 2 parked message(s) moved back to queue {queue!r}; 1 left in {parked_q!r}"
    )
