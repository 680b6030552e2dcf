"""Messages that come to a renamed outgoing AMQP connection's old name go out under its new name,
whoever holds the lease and whenever they come, in real clusters against the real RabbitMQ.

Before, only the holder that ran the old connector when the rename came moved the old name's
lists, once, right before the new connector started. A holder killed between the rename and
that move left them to a holder that knew nothing of the rename: they stayed in Redis for ever.
So did what a worker that had read the old definition just before the rename pushed under the
old name after the move. Now the rename is recorded in Redis with the rename itself, and the
holder moves what comes to the old name, fenced by its epoch (zato.connector.renames)."""

from __future__ import annotations

import collections
import os
import signal
import uuid

import pytest
import redis

from tests.conn_support import Rabbit
from tests.support import REDIS_URL, cleanup_redis, cluster_name, wait_for, zato
from zato.coord.keys import Keys
from zato.coord.lease import read_holder, read_supervisor_status
from zato.coord.queues import OutQueue, StaleEpoch, encode
from zato.coord.signing import outgoing_key

KEY = outgoing_key("the-test-cluster-secret", "orl")  # for messages only moved, never published
MESSAGES = 20


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield c
    c.close()


def _running(client: redis.Redis, cluster: str, name: str) -> bool:
    status = read_supervisor_status(client, cluster) or {}
    child = {c["name"]: c for c in status.get("children", [])}.get(name, {})
    return str(child.get("state")).lower() == "running"


def _running_of(client: redis.Redis, cluster: str, name: str):  # noqa: ANN202
    return lambda: _running(client, cluster, name)


def _connection(qs, rabbit: Rabbit, name: str) -> str:  # noqa: ANN001 - a Quickstart
    """An AMQP outgoing connection `name` publishing to a queue of the test's own; the queue."""
    zato("conn", "create", "amqp-def", qs.path, "--name", "rabbit", "--password", "guest")
    queue = rabbit.queue(f"zt-orlost-{uuid.uuid4().hex[:8]}")
    zato(
        "conn", "create", "amqp-outgoing", qs.path, "--name", name, "--def", "rabbit", "--routing-key", queue
    )
    return queue


def _push_under(client: redis.Redis, qs, name: str, tag: str) -> list[str]:  # noqa: ANN001 - a Quickstart
    """MESSAGES messages pushed under outgoing connection `name`, as a worker pushes them."""
    sent = [f"{tag}-{n}" for n in range(MESSAGES)]
    key = outgoing_key(qs.cluster_secret, qs.cluster)
    for body in sent:
        OutQueue(client, qs.cluster, "amqp", name).push(encode(body, key=key))
    return sent


def _each_once(rabbit: Rabbit, queue: str, sent: list[str]) -> None:
    wait_for(lambda: rabbit.count(queue) >= len(sent), 90, what=f"{len(sent)} messages at the broker")
    got = collections.Counter(body.decode() for _, body in rabbit.get_all(queue))
    assert sorted(got) == sorted(sent), f"lost: {sorted(set(sent) - set(got))}"
    assert [m for m, c in got.items() if c > 1] == [], "sent twice"


def _left(client: redis.Redis, cluster: str, name: str) -> int:
    queue = OutQueue(client, cluster, "amqp", name)
    return sum(queue.depth()) + queue.parked_count()


def _log(qs, name: str) -> str:  # noqa: ANN001
    with open(os.path.join(qs.server_dir(name), "logs", "server.log"), errors="replace") as f:
        return f.read()


def test_a_holder_killed_between_the_rename_and_the_move_leaves_the_next_holder_to_send_them(
    quickstart, client
):
    qs = quickstart(servers=2, lb=False)
    rabbit = Rabbit()
    try:
        qs.start("server1")  # the only one: the holder
        queue = _connection(qs, rabbit, "before")
        wait_for(_running_of(client, qs.cluster, "amqp-outgoing:before"), 60, what="the connector running")
        holder = qs.pid("server1")
        assert holder is not None
        os.killpg(holder, signal.SIGSTOP)  # the holder, its supervisor and connectors: frozen
        try:
            zato("conn", "edit", "amqp-outgoing", qs.path, "--name", "before", "--new-name", "after")
            # what a worker that read the definition just before the rename pushes under the old name
            sent = _push_under(client, qs, "before", "late")
        finally:
            os.killpg(holder, signal.SIGKILL)  # it dies having moved nothing
        qs.start("server2")
        wait_for(
            lambda: (h := read_holder(client, qs.cluster)) and h.server == "server2",
            60,
            what="server2 holding",
        )
        wait_for(_running_of(client, qs.cluster, "amqp-outgoing:after"), 60, what="the renamed connector")
        gone = lambda: _left(client, qs.cluster, "before") + _left(client, qs.cluster, "after") == 0  # noqa: E731
        wait_for(gone, 90, what="nothing left in Redis under either name")
        _each_once(rabbit, queue, sent)
        assert f"{MESSAGES} message(s) had come to its old name 'before'" in _log(qs, "server2")
    finally:
        rabbit.close()
        qs.close()


def test_what_a_worker_pushes_under_the_old_name_after_the_rename_goes_out_under_the_new_one(
    quickstart, client
):
    qs = quickstart(servers=1, lb=False)
    rabbit = Rabbit()
    try:
        qs.start()
        queue = _connection(qs, rabbit, "first")
        wait_for(_running_of(client, qs.cluster, "amqp-outgoing:first"), 60, what="the connector running")
        zato("conn", "edit", "amqp-outgoing", qs.path, "--name", "first", "--new-name", "second")
        wait_for(_running_of(client, qs.cluster, "amqp-outgoing:second"), 60, what="the renamed connector")
        assert "child amqp-outgoing:first: renamed amqp-outgoing:second" in _log(qs, "server1")
        sent = _push_under(client, qs, "first", "after-move")  # its lists were moved already
        gone = lambda: _left(client, qs.cluster, "first") + _left(client, qs.cluster, "second") == 0  # noqa: E731
        wait_for(gone, 90, what="nothing left in Redis under either name")
        _each_once(rabbit, queue, sent)
        assert f"{MESSAGES} message(s) had come to its old name 'first'" in _log(qs, "server1")

        # a new connection by the old name: what is sent through it is its own, not moved
        other = rabbit.queue(f"zt-orlost-{uuid.uuid4().hex[:8]}")
        zato("conn", "create", "amqp-outgoing", qs.path, "--name", "first", "--def", "rabbit",
             "--routing-key", other)  # fmt: skip
        assert not client.hexists(Keys(qs.cluster).out_renamed, "amqp:first"), "still the renamed one's"
        wait_for(_running_of(client, qs.cluster, "amqp-outgoing:first"), 60, what="the new 'first' running")
        own = _push_under(client, qs, "first", "own")
        _each_once(rabbit, other, own)
        assert rabbit.count(queue) == 0, "a message of the new 'first' went out through 'second'"
    finally:
        rabbit.close()
        qs.close()


def test_only_the_newest_epoch_moves_a_renamed_connections_messages(client):
    cluster = cluster_name("orl")
    try:
        client.set(Keys(cluster).epoch, 7)
        old = OutQueue(client, cluster, "amqp", "old", epoch=6)
        old.push(encode("kept", key=KEY))
        with pytest.raises(StaleEpoch):
            old.moved_to(OutQueue(client, cluster, "amqp", "new"))
        assert OutQueue(client, cluster, "amqp", "old").depth() == (1, 0)
        assert OutQueue(client, cluster, "amqp", "new").depth() == (0, 0)
        moved = OutQueue(client, cluster, "amqp", "old", epoch=7).moved_to(
            OutQueue(client, cluster, "amqp", "new")
        )
        assert moved.count == 1
        assert OutQueue(client, cluster, "amqp", "new").depth() == (1, 0)
    finally:
        cleanup_redis(cluster)


def test_a_move_for_a_recorded_rename_moves_nothing_once_the_name_is_made_again(client):
    """The lease holder settles renames off its main loop, so a connection made again under the
    old name (its script takes the rename's record away) may meet a move read before: that move
    finds no record and leaves the new connection's messages where they are."""
    cluster = cluster_name("orl")
    try:
        client.set(Keys(cluster).epoch, 3)
        old = OutQueue(client, cluster, "amqp", "old", epoch=3)
        old.push(encode("its own", key=KEY))
        moved = old.moved_to(OutQueue(client, cluster, "amqp", "new"), recorded_only=True)
        assert (moved.count, old.depth()) == (0, (1, 0))  # no record: made again, or never renamed
        client.hset(Keys(cluster).out_renamed, "amqp:old", '{"id": 1}')
        moved = old.moved_to(OutQueue(client, cluster, "amqp", "new"), recorded_only=True)
        assert (moved.count, OutQueue(client, cluster, "amqp", "new").depth()) == (1, (1, 0))
    finally:
        cleanup_redis(cluster)


def test_a_connector_of_the_old_name_starting_after_the_rename_does_not_list_it_again(client):
    """An outgoing connection renamed right after it was made: its connector, starting under the
    old definition, lists its queue (register) after the rename moved the listing to the new
    name. Before, the old name was listed again for good: /metrics and zato cluster status showed
    a connection that no longer exists (seen in test_definitions_odb_lost_commit under load)."""
    from zato.coord.changes import Change

    cluster = cluster_name("orl")
    try:
        old, new = OutQueue(client, cluster, "amqp", "orders"), OutQueue(client, cluster, "amqp", "orders-b")
        old.listed(Change(client, cluster, "the creation of amqp-outgoing orders"))
        old.relisted(new, Change(client, cluster, "the rename of amqp-outgoing orders"), 1)
        old.register()  # the old definition's connector, started while the rename was made
        assert client.smembers(Keys(cluster).out_names) == {"amqp:orders-b"}
        new.register()
        OutQueue(client, cluster, "amqp", "never-renamed").register()
        assert client.smembers(Keys(cluster).out_names) == {"amqp:orders-b", "amqp:never-renamed"}
    finally:
        cleanup_redis(cluster)
