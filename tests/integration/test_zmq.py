"""ZeroMQ: channel connector processes (PULL, SUB) invoke their service; outgoing PUSH sockets
live in the server process (self.outgoing.zmq)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis
import zmq

from tests.conn_support import (
    FakeServer,
    TCPProxy,
    log_text,
    make_server_dir,
    set_epoch,
    start_connector,
    stop_process,
)
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, wait_for
from zato.common.errors import ConnectorError
from zato.common.pidfile import pid_alive
from zato.config.settings import load_server_settings
from zato.connector import definitions
from zato.coord.handoff import Handoff
from zato.coord.keys import Keys
from zato.odb import connectors
from zato.odb.engine import ODB
from zato.service.outgoing import make_outgoing


@pytest.fixture
def env(tmp_path):
    cluster = cluster_name("zmq")
    server_dir = make_server_dir(str(tmp_path), cluster)
    odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
    set_epoch(cluster, 1)
    fake = FakeServer(cluster)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    outgoing = make_outgoing(load_server_settings(server_dir), client)
    zctx = zmq.Context()
    procs = []
    yield dict(cluster=cluster, dir=server_dir, odb=odb, fake=fake, out=outgoing, zctx=zctx, procs=procs)
    for p in procs:
        stop_process(p)
    outgoing.zmq.close()
    zctx.destroy(linger=0)
    fake.close()
    odb.dispose()
    client.close()
    cleanup_redis(cluster)


def _channel(env, name: str, **values):
    connectors.create(env["odb"], env["cluster"], "zmq-channel", {"name": name, **values})
    proc = start_connector(env["dir"], "zmq-channel", name)
    env["procs"].append(proc)
    return proc


def test_pull_channel_gets_what_outgoing_push_sends(env):
    port = free_port()
    _channel(env, "in", address=f"tcp://127.0.0.1:{port}", service="demo.zmq")
    connectors.create(
        env["odb"], env["cluster"], "zmq-outgoing", {"name": "out", "address": f"tcp://127.0.0.1:{port}"}
    )
    for i in range(50):
        env["out"].zmq.send({"n": i}, "out")
    wait_for(lambda: len(env["fake"].bodies("demo.zmq")) == 50, timeout=60, what="50 ZeroMQ messages")
    assert sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.zmq")) == list(range(50))


def test_pull_channel_runs_invocations_concurrently_up_to_its_bound(env):
    port = free_port()
    env["fake"].held.add("demo.slow")
    _channel(env, "slow", address=f"tcp://127.0.0.1:{port}", service="demo.slow", max_in_flight=3)
    push = env["zctx"].socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    for i in range(8):
        push.send_json({"n": i})
    wait_for(lambda: env["fake"].active == 3, timeout=60, what="three invocations held at once")
    env["fake"].release.set()
    wait_for(lambda: len(env["fake"].bodies("demo.slow")) == 8, timeout=60, what="8 ZeroMQ messages")
    assert env["fake"].peak == 3
    assert sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.slow")) == list(range(8))
    push.close(linger=0)


def test_a_message_over_the_body_limit_is_refused_at_the_socket(env):
    """A frame longer than the servers' [limits] max_body (no server would take it) is refused
    by ZeroMQ from its announced length and never reaches the service; the sender reconnects,
    and what it sends next arrives."""
    with open(os.path.join(env["dir"], "config", "server.conf"), "a") as f:
        f.write("\n[limits]\nmax_body = 1000\n")
    port = free_port()
    _channel(env, "cap", address=f"tcp://127.0.0.1:{port}", service="demo.cap", data_format="text")
    push = env["zctx"].socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send(b"fits")
    wait_for(lambda: env["fake"].bodies("demo.cap") == [b"fits"], timeout=60, what="the first message")
    push.send(b"x" * 1001)

    def next_arrives() -> bool:  # sent until one arrives: what was on the cut connection is gone
        push.send(b"after")
        time.sleep(0.1)
        return b"after" in env["fake"].bodies("demo.cap")

    wait_for(next_arrives, timeout=60, what="a message after the refused one")
    assert set(env["fake"].bodies("demo.cap")) == {b"fits", b"after"}
    assert "messages up to 1000 bytes" in log_text(env["dir"])
    push.close(linger=0)


def test_a_body_nested_too_deeply_to_parse_is_dropped_with_the_reason(env):
    """A JSON body nested deeper than a parser goes is poison like one that is not JSON: dropped
    at once with the reason in log and status, and the next message runs. Before, the check
    raised RecursionError (not ValueError): a traceback, "a message could not be handled"."""
    port = free_port()
    _channel(env, "deep", address=f"tcp://127.0.0.1:{port}", service="demo.deep")
    push = env["zctx"].socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send(b"[" * 100_000 + b"]" * 100_000)
    push.send_json({"n": 1})
    wait_for(lambda: env["fake"].bodies("demo.deep") == [b'{"n": 1}'], timeout=60, what="the next message")
    assert "dropped a message: body is JSON nested too deeply to parse" in log_text(env["dir"])
    assert "Traceback" not in log_text(env["dir"])
    push.close(linger=0)


def test_a_message_the_service_refuses_as_bad_input_is_not_retried(env):
    """A 400 (bad input) is logged and dropped at once: one invocation, not ATTEMPTS (before:
    five tries)."""
    port = free_port()
    env["fake"].reject.add("demo.picky")
    _channel(env, "picky", address=f"tcp://127.0.0.1:{port}", service="demo.picky")
    push = env["zctx"].socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send_json({"n": 0})
    wait_for(lambda: "refused it as bad input (400)" in log_text(env["dir"]), timeout=60, what="the log line")
    time.sleep(1.5)  # more than the first retry's delay: a retry would have come by now
    assert len(env["fake"].bodies("demo.picky")) == 1
    push.close(linger=0)


def test_a_message_no_server_can_take_yet_waits_and_is_not_dropped(env):
    """While every server answers 503 (it cannot check the call's epoch: its Redis away) the
    message waits, uncounted, and goes once a server takes it, as an AMQP or IBM MQ channel's
    does. Before, each 503 was a failed attempt: after 5 of them, about 4 s, the message was
    dropped ("message dropped after 5 failed attempts")."""
    port = free_port()
    fake = env["fake"]
    fake.unavailable.add("demo.later")
    _channel(env, "later", address=f"tcp://127.0.0.1:{port}", service="demo.later")
    push = env["zctx"].socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send_json({"n": 1})
    wait_for(lambda: fake.unavailable_calls > 6, timeout=60, what="more 503s than ATTEMPTS")
    fake.unavailable.discard("demo.later")  # its Redis is back
    wait_for(lambda: fake.bodies("demo.later"), timeout=30, what="the message, once a server takes it")
    assert fake.bodies("demo.later") == [b'{"n": 1}']
    log = log_text(env["dir"])
    assert "dropped" not in log, log
    assert "is unavailable" in log and "the message waits" in log, log
    push.close(linger=0)


def test_sub_channel_takes_only_its_prefix(env):
    port = free_port()
    pub = env["zctx"].socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{port}")
    _channel(
        env,
        "sub",
        address=f">tcp://127.0.0.1:{port}",
        socket_type="SUB",
        sub_prefix="orders.",
        service="demo.sub",
        data_format="text",
    )

    def published() -> bool:  # PUB drops messages until the subscriber joined: keep sending
        pub.send(b"other.x")
        pub.send(b"orders.hello")
        time.sleep(0.05)
        return bool(env["fake"].bodies("demo.sub"))

    wait_for(published, timeout=60, what="a message through the SUB channel")
    assert set(env["fake"].bodies("demo.sub")) == {b"hello"}
    pub.close(linger=0)


def test_unknown_outgoing_is_a_clear_error(env):
    with pytest.raises(ConnectorError, match="no active zmq-outgoing connection named 'missing'"):
        env["out"].zmq.send("x", "missing")


PARENT = """
import subprocess, sys, time
argv = [sys.executable, "-m", "zato.connector.run", sys.argv[1], "zmq-channel", sys.argv[2]]
child = subprocess.Popen(argv)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_connector_exits_when_its_parent_is_gone(env):
    connectors.create(
        env["odb"],
        env["cluster"],
        "zmq-channel",
        {"name": "orphan", "address": f"tcp://127.0.0.1:{free_port()}", "service": "demo.zmq"},
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, env["dir"], "orphan"],
        stdout=subprocess.PIPE,
        env=dict(os.environ, ZATO_EPOCH="1"),
        text=True,
    )
    child = int(parent.stdout.readline())
    try:
        wait_for(
            lambda: "PULL bound to" in open(os.path.join(env["dir"], "logs", "server.log")).read(), timeout=30
        )
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not pid_alive(child), timeout=30, what="the orphaned connector to exit")
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout.close()


def test_pull_channel_connects_to_producers_that_bind_and_a_new_holder_needs_no_new_address(env):
    """Two producers bind fixed addresses; the channel connects to both. When the connector is
    replaced (a takeover: another process, same definition), the producers change nothing: a
    send while no channel is connected waits until the new one connects, then arrives."""
    ports = [free_port(), free_port()]
    producers = []
    for port in ports:
        push = env["zctx"].socket(zmq.PUSH)
        push.bind(f"tcp://127.0.0.1:{port}")
        producers.append(push)
    address = ",".join(f">tcp://127.0.0.1:{p}" for p in ports)
    first = _channel(env, "producers", address=address, service="demo.producers")

    def numbers() -> set[int]:
        return {json.loads(b)["n"] for b in env["fake"].bodies("demo.producers")}

    for i in range(10):
        producers[i % 2].send(json.dumps({"n": i}).encode())
    wait_for(lambda: numbers() == set(range(10)), timeout=60, what="messages from both producers")
    stop_process(first)
    for push in producers:
        push.setsockopt(zmq.SNDTIMEO, 60000)

    def send_more() -> None:  # no channel connected now: each send waits for one
        for i in range(10, 20):
            producers[i % 2].send(json.dumps({"n": i}).encode())

    sender = threading.Thread(target=send_more, daemon=True)
    sender.start()
    set_epoch(env["cluster"], 2)
    env["procs"].append(start_connector(env["dir"], "zmq-channel", "producers", epoch=2))
    wait_for(lambda: numbers() == set(range(20)), timeout=60, what="messages sent between the two connectors")
    sender.join(10)
    for push in producers:
        push.close(linger=0)


@pytest.mark.parametrize("mode", ["SUB bound", "PULL connected"])
def test_what_a_stopping_channel_had_received_reaches_the_service_through_its_next_connector(env, mode):
    """A stop (SIGTERM: an edit, a restart, the server stopping) while messages waited in the
    channel's socket: before, the socket was closed with them (linger 0) and they were gone
    without a word; now the next connector gets them."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env["fake"].held.add("demo.handover")
    if mode == "SUB bound":
        sender = env["zctx"].socket(zmq.PUB)
        sender.connect(address)
        values = dict(address=address, socket_type="SUB")
    else:
        sender = env["zctx"].socket(zmq.PUSH)
        sender.bind(address)
        values = dict(address=f">{address}")
    first = _channel(env, "handover", service="demo.handover", max_in_flight=1, **values)

    def one_held() -> bool:  # SUB: PUB drops messages until the subscriber joined; keep sending
        sender.send(b'{"warm": 1}')
        time.sleep(0.05)
        return env["fake"].active == 1

    wait_for(one_held, timeout=60, what="an invocation held")
    for i in range(50):
        sender.send(json.dumps({"n": i}).encode())
    time.sleep(0.5)  # in the channel's socket, its one slot busy
    first.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    env["fake"].release.set()
    stop_process(first)
    env["procs"].append(start_connector(env["dir"], "zmq-channel", "handover"))

    def numbers() -> list[int]:
        return sorted(
            n for b in env["fake"].bodies("demo.handover") if (n := json.loads(b).get("n")) is not None
        )

    wait_for(lambda: set(numbers()) == set(range(50)), timeout=60, what="all 50 at the service")
    assert numbers() == list(range(50))  # once each
    assert "were dropped" not in log_text(env["dir"])
    sender.close(linger=0)


def _held_with_twenty_sent(env, name: str, service: str):
    """A channel `name` (max_in_flight 1) whose service is held, 20 messages sent to it and the
    first one running: (the sender, the connector's process)."""
    port = free_port()
    env["fake"].held.add(service)
    sender = env["zctx"].socket(zmq.PUSH)
    sender.connect(f"tcp://127.0.0.1:{port}")
    proc = _channel(env, name, address=f"tcp://127.0.0.1:{port}", service=service, max_in_flight=1)
    for i in range(20):
        sender.send(json.dumps({"n": i}).encode())
    wait_for(lambda: env["fake"].active == 1, timeout=60, what="an invocation held")
    return sender, proc


def test_a_channel_deleted_while_it_stops_hands_nothing_over_and_says_how_many_it_dropped(env):
    """The deletion and the stop of its connector race: the connector hands its socket's
    messages over after the channel is gone. Before, they stayed in Redis for good; now the
    connector drops them and says so, and no hand-off list is left."""
    sender, proc = _held_with_twenty_sent(env, "gone", "demo.gone")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        definitions.delete(env["odb"], client, env["cluster"], "zmq-channel", "gone")  # none handed over yet
        proc.send_signal(signal.SIGTERM)  # as the supervisor does once it heard of the deletion
        env["fake"].release.set()
        stop_process(proc)
        assert not client.exists(Keys(env["cluster"]).channel_handoff("zmq-channel", "gone"))
        said = re.search(r"(\d+) messages received but not processed were dropped: the channel was deleted",
                         log_text(env["dir"]))  # fmt: skip
        assert said and int(said.group(1)) >= 10  # what its socket held (a sender may keep some)
    finally:
        client.close()
        sender.close(linger=0)


@pytest.mark.parametrize("when", ["handed over before the rename", "handed over after the rename"])
def test_a_renamed_channel_runs_what_its_old_connector_handed_over(env, when):
    """`zato conn edit zmq-channel --name old --new-name new`: the hand-off lists were named after
    the channel, so what its old connector handed over (before the rename, or while it stopped
    after it) waited under the old name and never ran; now the new name's connector runs it all."""
    sender, old = _held_with_twenty_sent(env, "before", "demo.renamed")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        if when == "handed over before the rename":
            old.send_signal(signal.SIGTERM)
            env["fake"].release.set()
            stop_process(old)
            definitions.edit(env["odb"], client, env["cluster"], "zmq-channel", "before", {"name": "after"})
        else:
            definitions.edit(env["odb"], client, env["cluster"], "zmq-channel", "before", {"name": "after"})
            old.send_signal(signal.SIGTERM)  # as the supervisor does once it heard of the rename
            env["fake"].release.set()
            stop_process(old)
        assert "handed to the channel's next connector" in log_text(env["dir"])
        env["procs"].append(start_connector(env["dir"], "zmq-channel", "after"))

        def numbers() -> list[int]:
            return sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.renamed"))

        wait_for(lambda: set(numbers()) == set(range(20)), timeout=30, what="all 20 at the service")
        assert numbers() == list(range(20))  # once each
        assert not client.exists(Keys(env["cluster"]).channel_handoff("zmq-channel", "before"))
    finally:
        client.close()
        sender.close(linger=0)


def test_a_connector_stopping_after_two_renames_hands_over_to_the_channels_current_name(env):
    """before -> middle -> after while the first connector still stops: what it hands over,
    gives back and finishes lands in the lists the current name's connector reads."""
    client = redis.Redis.from_url(REDIS_URL, encoding="latin-1", decode_responses=True)
    try:
        first = Handoff(client, env["cluster"], "zmq-channel", "before", epoch=1)
        assert first.hand_over(["a", "b"])
        assert first.take_many(1) == ["a"]
        first.rename("middle")
        Handoff(client, env["cluster"], "zmq-channel", "middle").rename("after")
        assert first.hand_over(["c"])
        first.give_back(["a"])
        now = Handoff(client, env["cluster"], "zmq-channel", "after", epoch=1)
        assert now.depth() == (3, 0)  # a given back out of processing, b moved, c handed late
        assert now.take_many(3) == ["a", "b", "c"]
        first.done(["b"])  # the old connector finished one the new one had taken: out of its list
        assert sorted(now.leftovers()) == ["a", "c"]
    finally:
        client.close()


def test_a_connector_waits_for_the_other_connectors_of_its_channel_before_it_runs_their_leftovers(env):
    """What decides whether the processing list holds leftovers: another connector of the
    channel, of the same epoch or a newer one, alive (not exited, its alive key not lapsed), and
    through a rename too; one of an older epoch is not waited for."""
    client = redis.Redis.from_url(REDIS_URL, encoding="latin-1", decode_responses=True)
    try:
        old = Handoff(client, env["cluster"], "zmq-channel", "ch", epoch=5)
        new = Handoff(client, env["cluster"], "zmq-channel", "ch", epoch=5)
        assert old.beat() == 0
        assert new.beat() == 1  # the edit's old connector, still stopping
        old.leave()
        assert new.beat() == 0  # it exited: what it left is leftovers
        stale = Handoff(client, env["cluster"], "zmq-channel", "ch", epoch=4)
        assert stale.beat() == 1  # a newer holder's connector is alive: not its leftovers
        assert new.beat() == 0  # an older epoch's connector is gone or fenced
        renamed = Handoff(client, env["cluster"], "zmq-channel", "ch2", epoch=5)
        new.rename("ch2")
        assert renamed.beat() == 1  # the old name's connector, still stopping
        new.leave()
        assert renamed.beat() == 0
    finally:
        client.close()


def test_a_deleted_channels_marker_waits_for_a_killed_connector_of_its_epoch_not_of_an_older_one(env):
    """A connector SIGKILLed never says it exited. One of the holder's epoch may be a paused
    process that comes back: the marker stays (until the name is used again). One of an older
    epoch whose alive key lapsed is gone or fenced by the lease: the delete forgets it, and the
    marker lives one hour, not for good."""
    client = redis.Redis.from_url(REDIS_URL, encoding="latin-1", decode_responses=True)
    keys = Keys(env["cluster"])
    try:
        older = Handoff(client, env["cluster"], "zmq-channel", "old-epoch", epoch=1)
        same = Handoff(client, env["cluster"], "zmq-channel", "same-epoch", epoch=2)
        older.beat()
        same.beat()
        set_epoch(env["cluster"], 2)  # a takeover after the first was killed
        lapsed = lambda: not client.exists(older.alive) and not client.exists(same.alive)  # noqa: E731
        wait_for(lapsed, timeout=30, what="both alive keys lapsed (LIVE_TTL after their last beat)")
        older.drop()
        same.drop()
        assert 0 < client.ttl(keys.channel_handoff_deleted("zmq-channel", "old-epoch")) <= 3600
        assert client.ttl(keys.channel_handoff_deleted("zmq-channel", "same-epoch")) == -1  # no expiry
    finally:
        client.close()


def _an_hour_passes(client: redis.Redis, cluster: str) -> None:
    """What an hour does to the cluster's hand-off keys: each with a TTL of up to one hour
    expires (a connector's alive key, a marker)."""
    for key in client.scan_iter(f"zato:{cluster}:handoff*", count=1000):
        if 0 < client.ttl(key) <= 3600:
            client.pexpire(key, 1)
    time.sleep(0.05)


@pytest.mark.parametrize("change", ["deleted", "renamed"])
def test_a_connector_stopping_an_hour_after_its_channel_was_deleted_or_renamed_still_follows(env, change):
    """Before: the marker a delete or a rename leaves for the channel's stopping connector
    lived one hour; a connector whose stop came later (paused: SIGSTOP, a frozen VM) found
    none, so it handed its socket's messages to a list under the old name: a deleted channel's
    list was made again, for good, and a renamed one's messages waited where no connector reads.
    Now the marker lives until every connector registered under that name has exited (then one
    hour more, for a connector started from a definition read just before)."""
    sender, old = _held_with_twenty_sent(env, "late", "demo.late")
    client = redis.Redis.from_url(REDIS_URL)
    keys = Keys(env["cluster"])
    try:
        time.sleep(0.5)  # the connector registered (its first beat) and read the 19 in its socket
        old.send_signal(signal.SIGSTOP)
        if change == "deleted":
            definitions.delete(env["odb"], client, env["cluster"], "zmq-channel", "late")
        else:
            definitions.edit(env["odb"], client, env["cluster"], "zmq-channel", "late", {"name": "later"})
        _an_hour_passes(client, env["cluster"])
        old.send_signal(signal.SIGCONT)
        old.send_signal(signal.SIGTERM)  # as the supervisor does once it heard of the change
        env["fake"].release.set()
        stop_process(old)
        assert not client.exists(keys.channel_handoff("zmq-channel", "late"))
        marker = keys.channel_handoff_deleted if change == "deleted" else keys.channel_handoff_renamed
        assert 0 < client.ttl(marker("zmq-channel", "late")) <= 3600  # one hour more, not for good
        if change == "deleted":
            dropped = r"(\d+) messages received but not processed were dropped: the channel was deleted"
            said = re.search(dropped, log_text(env["dir"]))
            assert said and int(said.group(1)) >= 10
            return
        env["procs"].append(start_connector(env["dir"], "zmq-channel", "later"))

        def numbers() -> list[int]:
            return sorted(json.loads(b)["n"] for b in env["fake"].bodies("demo.late"))

        wait_for(lambda: set(numbers()) == set(range(20)), timeout=30, what="all 20 at the service")
        assert numbers() == list(range(20))  # once each
    finally:
        client.close()
        sender.close(linger=0)


def test_a_stop_while_redis_is_away_runs_what_it_cannot_hand_over_every_one_of_them(env):
    """The connector's Redis (a TCP forwarder of the test's own in front of it) goes away, then
    the connector stops with 50 messages in its socket: it cannot hand them over and runs them
    here (DRAIN). Before, the last one it queued to run was cancelled by the pool's shutdown and
    never ran, without a word (49 of 50)."""
    proxy = TCPProxy(free_port(), ("127.0.0.1", 6379))
    proxy.start()
    conf = os.path.join(env["dir"], "config", "server.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace(f"url = {REDIS_URL}", f"url = redis://127.0.0.1:{proxy.port}/0"))
    address = f"tcp://127.0.0.1:{free_port()}"
    env["fake"].held.add("demo.away")
    sender = env["zctx"].socket(zmq.PUSH)
    sender.bind(address)
    proc = _channel(env, "away", service="demo.away", max_in_flight=1, address=f">{address}")

    def one_held() -> bool:
        sender.send(b'{"warm": 1}')
        time.sleep(0.05)
        return env["fake"].active == 1

    try:
        wait_for(one_held, timeout=60, what="an invocation held")
        for i in range(50):
            sender.send(json.dumps({"n": i}).encode())
        time.sleep(0.5)  # in the channel's socket, its one slot busy
        proxy.stop()  # Redis goes away for the connector
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        env["fake"].release.set()
        stop_process(proc)
    finally:
        proxy.stop()
        sender.close(linger=0)
    numbers = sorted(n for b in env["fake"].bodies("demo.away") if (n := json.loads(b).get("n")) is not None)
    assert numbers == list(range(50))
    assert re.search(r"cannot hand \d+ messages over", log_text(env["dir"]))  # and the warm-up ones
    assert "were dropped" not in log_text(env["dir"])


def test_a_hand_off_that_cannot_be_read_is_said_once_then_every_10_s_with_the_count(env):
    """The hand-off lists are plain keys in Redis: a Redis writer (or Redis away) can make every
    read of them fail. Before, the connector said so once a second for as long as it lasted
    (each line some 300 bytes, for good); now at the first failure, then every 10 s with the
    count of failed reads, and once at INFO when the lists read again."""
    port = free_port()
    _channel(env, "in", address=f"tcp://127.0.0.1:{port}", service="demo.zmq")
    wait_for(lambda: "service 'demo.zmq'" in log_text(env["dir"]), 30, what="the channel running")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    keys = Keys(env["cluster"])
    queue = keys.channel_handoff("zmq-channel", "in")
    client.set(queue, "not a list")
    said = "cannot read the messages handed over"
    wait_for(
        lambda: re.search(f"{said}: .*WRONGTYPE.*failed reads so far", log_text(env["dir"])), 30, what="again"
    )
    lines = [line for line in log_text(env["dir"]).splitlines() if said in line]
    assert len(lines) == 2, lines  # the first failure, and 10 s on with the count
    assert int(re.search(r"\((\d+) failed reads so far\)", lines[1]).group(1)) >= 5
    client.delete(queue)
    wait_for(lambda: "the messages handed over read again" in log_text(env["dir"]), 30, what="the recovery")
    client.close()
