"""`zato cluster run-parked` and `zato conn replay-parked amqp-outgoing` when the connection to
Redis is cut half-way through the move (a TCP forwarder of the test's own in front of Redis,
stopped mid-move): one line says how many moved and that the rest stay parked, nothing is lost
(each message is in the queue or still parked, once), and running it again moves the rest.
Before: the error did not say that some had moved, and the commands moved at most 10,000 a run
without a word of the rest."""

from __future__ import annotations

import re
import subprocess
import sys
import types

import pytest
import redis

from tests.conn_support import TCPProxy, make_server_dir
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, wait_for, zato
from zato.config.settings import RedisSettings
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue

COUNT = 20000  # enough that the cut comes mid-move


def lists(cluster: str, command: str) -> tuple[str, str, tuple[str, ...]]:
    """(parked list, queue, the command's arguments after DIR) of `command`."""
    if command == "run-parked":
        keys = Keys(cluster)
        return keys.async_parked, keys.async_queue, ()
    queue = OutQueue(redis.Redis.from_url(REDIS_URL), cluster, "amqp", "out")
    return queue.parked, queue.queue, ("--name", "out")


@pytest.mark.parametrize("command", ["run-parked", "replay-parked"])
def test_a_cut_mid_move_says_how_many_moved_loses_none_and_a_rerun_moves_the_rest(tmp_path, command):
    cluster = cluster_name("pcut")
    port = free_port()
    server_dir = make_server_dir(str(tmp_path), cluster, redis_url=f"redis://127.0.0.1:{port}/0")
    argv = ["cluster", "run-parked", server_dir] if command == "run-parked" else []
    parked, queue, more = lists(cluster, command)
    if command == "replay-parked":
        argv = ["conn", "replay-parked", "amqp-outgoing", server_dir, *more]
    admin = redis.Redis.from_url(REDIS_URL)
    proxy = TCPProxy(port, ("127.0.0.1", 6379))
    try:
        for start in range(0, COUNT, 1000):
            admin.rpush(parked, *(f"m{i}" for i in range(start, start + 1000)))
        proxy.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "zato", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: admin.llen(queue) >= 200, 60, what="the move under way")
        proxy.stop()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zato: error: "), err
        moved = admin.llen(queue)
        assert 0 < moved < COUNT
        said = re.search(r"; (\d+) moved before \(or (\d+): the last move's answer may have been lost\)", err)
        assert said and moved in (int(said[1]), int(said[2])), err  # the cut may come after the last move
        assert lines[0].endswith(f", the rest stay in {parked}"), err
        everything = [m.decode() for m in admin.lrange(queue, 0, -1) + admin.lrange(parked, 0, -1)]
        assert sorted(everything) == sorted(f"m{i}" for i in range(COUNT))  # none lost, none twice
        proxy.start()
        again = zato(*argv)
        assert f" {COUNT - moved} " in again.stdout
        assert admin.llen(queue) == COUNT and admin.llen(parked) == 0
    finally:
        proxy.stop()
        admin.close()
        cleanup_redis(cluster)


def test_the_dashboard_moves_at_most_its_limit_a_click_and_says_how_many_are_left(tmp_path):
    """The CLI moves every parked call (above); the dashboard's 'Run parked again' and 'Re-send
    parked' at most REPLAY_LIMIT a click, and say how many are left (before: they stopped at
    10,000 and said nothing of the rest, and so did the CLI)."""
    from zato.dashboard import actions
    from zato.odb.engine import ODB

    cluster = cluster_name("pcap")
    settings = types.SimpleNamespace(cluster=cluster)
    admin = redis.Redis.from_url(REDIS_URL)
    client = connect(RedisSettings(url=REDIS_URL))
    odb = ODB(f"sqlite:///{tmp_path / 'odb.db'}")
    total = actions.REPLAY_LIMIT + 5
    try:
        for parked, _, _ in (lists(cluster, "run-parked"), lists(cluster, "replay-parked")):
            for start in range(0, total, 1000):
                admin.rpush(parked, *(f"m{i}" for i in range(start, min(total, start + 1000))))
        assert actions.requeue_async(settings, client) == (
            f"invoke_async: {actions.REPLAY_LIMIT} parked call(s) queued again; 5 still parked: click again"
            " to move them"
        )
        assert actions.requeue_async(settings, client) == "invoke_async: 5 parked call(s) queued again"
        assert actions.resend_parked(settings, client, "amqp", "out", odb) == (
            f"outgoing amqp out: {actions.REPLAY_LIMIT} parked message(s) queued again; 5 still parked:"
            " click again to move them"
        )
        assert actions.resend_parked(settings, client, "amqp", "out", odb) == (
            "outgoing amqp out: 5 parked message(s) queued again"
        )
    finally:
        odb.dispose()
        client.close()
        admin.close()
        cleanup_redis(cluster)
