"""`zato conn create|edit --new-name|delete` when Redis runs the change's Redis part (a ZeroMQ
channel's hand-off lists, the list of outgoing queues) but the connection breaks before its
answer comes back: a forwarder of the test's own between the CLI and Redis delivers the
command and drops the answer (tests/lost_reply_proxy.py). The command reads back, once Redis
answers again, whether its part ran: it did -> the change is complete (ODB and Redis agree,
the servers are told, stderr says the answer was lost); it did not (the command was cut before
Redis got it) -> nothing changed; Redis unreachable since -> the ODB change is undone, the
error says so, and the same command run again completes it.
Before: every lost answer undid the ODB change while Redis had made its part: a deleted
channel kept its 'deleted' marker (its connector hands nothing over for an hour), a renamed
one's lists sat under the new name while the ODB kept the old, an outgoing connection was
listed under both names or none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.conn_support import make_server_dir
from tests.lost_reply_proxy import LostReplyProxy
from tests.support import REDIS_URL, cleanup_redis, cluster_name, free_port, popen_interruptible, wait_for
from zato.config.settings import RedisSettings
from zato.connector import definitions
from zato.coord.client import connect
from zato.coord.handoff import Handoff
from zato.coord.keys import Keys
from zato.coord.queues import OutQueue, registered
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.engine import ODB

LOST = "Redis's answer was lost"


@dataclass
class Env:
    cluster: str
    dir: str
    odb: ODB
    up: redis.Redis  # straight to Redis, for the test's own set-up and checks
    port: int  # the forwarder's, which the CLI's server.conf names

    def zato(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "zato", "conn", *argv], capture_output=True, text=True, timeout=120
        )

    def names(self, kind: str) -> list[str]:
        return [v["name"] for v in connectors.list_all(self.odb, self.cluster, kind)]

    def handoff(self, name: str) -> Handoff:
        return Handoff(self.up, self.cluster, "zmq-channel", name)

    def held(self, name: str) -> int:
        h = self.handoff(name)
        return int(self.up.llen(h.queue)) + int(self.up.llen(h.processing))

    def proxy(self, marker: str, deliver: bool = True, away: bool = False) -> LostReplyProxy:
        return LostReplyProxy(self.port, f"zato:{self.cluster}:{marker}".encode(), deliver, away)


@pytest.fixture
def env(tmp_path) -> Iterator[Env]:
    cluster = cluster_name("connwin")
    port = free_port()
    server_dir = make_server_dir(str(tmp_path), cluster, redis_url=f"redis://127.0.0.1:{port}/0")
    odb = ODB(f"sqlite:///{tmp_path / 'odb.sqlite'}")
    odb_api.ensure_cluster(odb, cluster)
    up = connect(RedisSettings(url=REDIS_URL))
    definitions.create(odb, up, cluster, "amqp-def", {"name": "rabbit"})
    try:
        yield Env(cluster, server_dir, odb, up, port)
    finally:
        up.close()
        odb.dispose()
        cleanup_redis(cluster)


def zmq(env: Env, name: str = "a") -> dict:
    return {"name": name, "address": f"tcp://127.0.0.1:{free_port()}", "service": "s"}


def run_cut(env: Env, proxy: LostReplyProxy, *argv: str) -> subprocess.CompletedProcess:
    """The CLI command `argv`, through `proxy`; the events the servers were sent meanwhile."""
    sub = env.up.pubsub()
    sub.subscribe(Keys(env.cluster).events)
    sub.get_message(timeout=5)  # the subscription's confirmation
    proxy.start()
    try:
        proc = env.zato(*argv)
    finally:
        proxy.stop()
    proc.events = []  # type: ignore[attr-defined]
    while (msg := sub.get_message(timeout=0.5)) is not None:
        proc.events.append(msg["data"])  # type: ignore[attr-defined]
    sub.close()
    assert proxy.cut.is_set(), "the forwarder lost no answer"
    return proc


def run_again(env: Env, proxy: LostReplyProxy, argv: tuple[str, ...]) -> None:
    """The same command through `proxy` (its answer lost already: it forwards all now)."""
    proxy.start()
    try:
        again = env.zato(*argv)
    finally:
        proxy.stop()
    assert again.returncode == 0, again.stdout + again.stderr


def completed(proc: subprocess.CompletedProcess, what: str) -> None:
    """The command went through and said that Redis's answer was lost but its part was made."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"warning: {LOST} (" in proc.stderr, proc.stderr
    assert f"but Redis had made its part (read back once it answered): {what}" in proc.stderr, proc.stderr
    assert proc.events, "the servers were not told"  # type: ignore[attr-defined]


# --- Redis ran the part, its answer was lost: the change is complete -----------------------


def test_a_zmq_channel_created_again_is_complete_and_its_connectors_hand_over(env):
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    definitions.delete(env.odb, env.up, env.cluster, "zmq-channel", "a")  # 'deleted' marker set
    values = zmq(env)
    proc = run_cut(
        env,
        env.proxy("handoff:zmq-channel:a"),
        *("create", "zmq-channel", env.dir, "--name", "a", "--address", values["address"], "--service", "s"),
    )
    completed(proc, "zmq-channel a is complete")
    assert proc.stdout.startswith("created zmq-channel a:")
    assert env.names("zmq-channel") == ["a"]
    assert not env.up.exists(env.handoff("a").deleted)
    assert env.handoff("a").hand_over(["m1"])  # its stopping connector hands over again


def test_an_amqp_outgoing_created_where_messages_wait_is_complete_and_listed(env):
    definitions.create(env.odb, env.up, env.cluster, "amqp-outgoing", {"name": "a", "def": "rabbit"})
    queue = OutQueue(env.up, env.cluster, "amqp", "a")
    for i in range(3):
        queue.push(f"m{i}")
    definitions.delete(env.odb, env.up, env.cluster, "amqp-outgoing", "a", force=True)  # 3 stay queued
    proc = run_cut(
        env, env.proxy("out-names"), "create", "amqp-outgoing", env.dir, "--name", "a", "--def", "rabbit"
    )
    completed(proc, "amqp-outgoing a is complete")
    assert env.names("amqp-outgoing") == ["a"]
    assert registered(env.up, env.cluster) == [("amqp", "a")]
    assert queue.depth() == (3, 0)


def test_a_zmq_channel_renamed_is_complete_and_its_handed_over_messages_moved(env):
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    proc = run_cut(
        env,
        env.proxy("handoff:zmq-channel:a"),
        "edit",
        "zmq-channel",
        env.dir,
        "--name",
        "a",
        "--new-name",
        "b",
    )
    completed(proc, "the change to zmq-channel a is complete")
    assert env.names("zmq-channel") == ["b"]
    assert (env.held("a"), env.held("b")) == (0, 2)  # where the connector of 'b' reads


def test_an_amqp_outgoing_renamed_is_complete_and_listed_once(env):
    definitions.create(env.odb, env.up, env.cluster, "amqp-outgoing", {"name": "a", "def": "rabbit"})
    proc = run_cut(
        env, env.proxy("out-names"), "edit", "amqp-outgoing", env.dir, "--name", "a", "--new-name", "b"
    )
    completed(proc, "the change to amqp-outgoing a is complete")
    assert env.names("amqp-outgoing") == ["b"]
    assert registered(env.up, env.cluster) == [("amqp", "b")]


def test_a_zmq_channel_deleted_is_complete_and_says_how_many_handed_over_messages_went(env):
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    proc = run_cut(env, env.proxy("handoff:zmq-channel:a"), "delete", "zmq-channel", env.dir, "--name", "a")
    completed(proc, "the deletion of zmq-channel a is complete")
    assert proc.stdout == "deleted zmq-channel a\n"
    assert "warning: 2 message(s) its connectors had received and handed over" in proc.stderr
    assert env.names("zmq-channel") == []
    assert env.held("a") == 0 and env.up.exists(env.handoff("a").deleted)


def test_an_amqp_outgoing_deleted_with_messages_waiting_is_complete_and_off_the_list(env):
    definitions.create(env.odb, env.up, env.cluster, "amqp-outgoing", {"name": "a", "def": "rabbit"})
    queue = OutQueue(env.up, env.cluster, "amqp", "a")
    for i in range(3):
        queue.push(f"m{i}")
    proc = run_cut(env, env.proxy("out-names"), "delete", "amqp-outgoing", env.dir, "--name", "a", "--force")
    completed(proc, "the deletion of amqp-outgoing a is complete")
    assert "warning: 3 message(s) sent through it stay in Redis" in proc.stderr
    assert env.names("amqp-outgoing") == []
    assert registered(env.up, env.cluster) == []
    assert queue.depth() == (3, 0)


# --- the command was cut before Redis got it: nothing changed ------------------------------


@pytest.mark.parametrize("command", ["rename", "delete"])
def test_a_zmq_change_cut_before_redis_got_it_changes_nothing(env, command):
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    argv = ("edit", "zmq-channel", env.dir, "--name", "a", "--new-name", "b")
    if command == "delete":
        argv = ("delete", "zmq-channel", env.dir, "--name", "a")
    proxy = env.proxy("handoff:zmq-channel:a", deliver=False)
    proc = run_cut(env, proxy, *argv)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "(nothing changed: " in proc.stderr and LOST not in proc.stderr, proc.stderr
    assert not proc.events  # type: ignore[attr-defined]
    assert env.names("zmq-channel") == ["a"]
    assert (env.held("a"), env.held("b")) == (2, 0)
    assert not env.up.exists(env.handoff("a").deleted) and not env.up.exists(env.handoff("a").renamed)
    run_again(env, proxy, argv)
    assert env.names("zmq-channel") == ([] if command == "delete" else ["b"])


# --- Redis made its part, then went away for longer than the command waits -----------------


@pytest.mark.parametrize("command", ["rename", "delete"])
def test_a_zmq_change_whose_redis_went_away_is_undone_said_so_and_completed_by_running_it_again(env, command):
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    argv = ("edit", "zmq-channel", env.dir, "--name", "a", "--new-name", "b")
    if command == "delete":
        argv = ("delete", "zmq-channel", env.dir, "--name", "a")
    proxy = env.proxy("handoff:zmq-channel:a", away=True)
    proc = run_cut(env, proxy, *argv)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "and Redis did not answer again within 10 s to say whether it made its part of it" in proc.stderr
    assert "the ODB change is undone; run it again once Redis answers, which completes it" in proc.stderr
    assert env.names("zmq-channel") == ["a"]
    run_again(env, proxy, argv)  # Redis answers again
    if command == "delete":
        assert env.names("zmq-channel") == [] and env.up.exists(env.handoff("a").deleted)
    else:
        assert env.names("zmq-channel") == ["b"] and (env.held("a"), env.held("b")) == (0, 2)


def test_a_change_key_a_redis_writer_overwrote_with_text_is_unknown_undone_and_said_so(env):
    """Redis made the part of a deletion, its answer was lost, and before the command read back
    whether it ran another Redis client overwrote the change's key with text: before, settle()
    raised ValueError (int() of it), a traceback, the channel gone from the ODB while nothing
    said whether Redis had made its part. Now: unknown, said so in one line, the ODB change
    undone as when Redis stays away; the same command run again completes it."""
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    argv = ("delete", "zmq-channel", env.dir, "--name", "a")
    changes = Keys(env.cluster).definition_change("*")
    before = set(env.up.keys(changes))
    proxy = env.proxy("handoff:zmq-channel:a", away=True)
    proxy.start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zato", "conn", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(proxy.cut.is_set, 60, what="the answer lost")
        [key] = set(env.up.keys(changes)) - before  # what the part set
        env.up.set(key, "clifix was here", ex=60)
        proxy.start()  # Redis answers again: the command reads the key back
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proxy.stop()
    assert proc.returncode == 1 and "Traceback" not in err, err
    [line] = err.splitlines()
    assert line.startswith("zato: error: deleting the hand-off of zmq-channel 'a': "), line
    assert line.endswith(
        "(and whether Redis made its part of it is unknown: the key of the deletion of zmq-channel a"
        f" in Redis, {key}, holds 'clifix was here', which no change writes (another Redis client's?);"
        " the ODB change is undone; run it again, which completes it whether or not Redis made its part)"
    ), line
    assert env.names("zmq-channel") == ["a"]  # undone: the ODB keeps it
    run_again(env, proxy, argv)
    assert env.names("zmq-channel") == [] and env.up.exists(env.handoff("a").deleted)


# --- the admin API (the dashboard's and scripts' way) ---------------------------------------


def test_the_admin_api_completes_a_deletion_whose_answer_was_lost_and_warns_of_it(env, tmp_path):
    """DELETE /zato/admin/conn/zmq-channel/a served by a real worker whose Redis is behind the
    forwarder: 200 with "warnings" saying the answer was lost and the deletion is complete, and
    how many handed-over messages went (before: 503 'nothing changed' and the channel kept in
    the ODB under Redis's 'deleted' marker)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import requests

    from zato.admin.api import build_app
    from zato.config.settings import ServerSettings
    from zato.server.worker import Worker

    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    settings = ServerSettings(
        path=str(tmp_path), name="s1", cluster=env.cluster, host="127.0.0.1", port=1, workers=1,
        odb_url=str(env.odb.engine.url), redis=RedisSettings(url=f"redis://127.0.0.1:{env.port}/0"),
        admin_username="admin", admin_password="pw", cluster_secret="s",
    )  # fmt: skip
    proxy = env.proxy("handoff:zmq-channel:a")
    proxy.start()
    worker = Worker(settings)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    http = make_server("127.0.0.1", free_port(), build_app(worker), handler_class=Quiet)
    serving = threading.Thread(target=http.serve_forever, daemon=True)
    serving.start()
    try:
        r = requests.delete(f"http://127.0.0.1:{http.server_port}/conn/zmq-channel/a", timeout=60)
    finally:
        http.shutdown()
        http.server_close()
        worker.close()
        proxy.stop()
    assert proxy.cut.is_set()
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["deleted"] == "zmq-channel a" and answer["dropped"] == 2
    [warning] = answer["warnings"]
    assert warning.startswith(LOST) and warning.endswith("the deletion of zmq-channel a is complete")
    assert env.names("zmq-channel") == [] and env.held("a") == 0


# --- the fence itself --------------------------------------------------------------------


def test_a_part_that_reaches_redis_after_its_change_gave_up_on_it_changes_nothing(env):
    """settle() before the part reached Redis (its command held up on the way): the part,
    arriving after, does nothing, so the change undone in the ODB stays undone in Redis too;
    and settle() after the part ran reads its result."""
    from zato.common.errors import CoordDataError
    from zato.coord.changes import Change

    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    late = Change(env.up, env.cluster, "the deletion of zmq-channel a")
    assert late.settle(wait=0) is None  # not run: it never will
    with pytest.raises(CoordDataError, match="had given up on it: nothing changed"):
        env.handoff("a").drop(late)
    assert env.held("a") == 2 and not env.up.exists(env.handoff("a").deleted)
    ran = Change(env.up, env.cluster, "the deletion of zmq-channel a")
    assert env.handoff("a").drop(ran) == 2
    assert ran.settle(wait=0) == 2


def test_a_zmq_deletion_interrupted_while_it_waits_for_redis_is_undone_and_said_so(env):
    """Ctrl-C (SIGINT) while the command waits for Redis to say whether it made its part: the
    ODB change is undone and the error says so; the same command run again completes it.
    Before, KeyboardInterrupt left the ODB changed, Redis unknown, exit 130 without a word, and
    running it again said 'no zmq-channel named'."""
    definitions.create(env.odb, env.up, env.cluster, "zmq-channel", zmq(env))
    assert env.handoff("a").hand_over(["m1", "m2"])
    argv = ("delete", "zmq-channel", env.dir, "--name", "a")
    proxy = env.proxy("handoff:zmq-channel:a", away=True)
    proxy.start()
    try:
        proc = popen_interruptible(
            [sys.executable, "-m", "zato", "conn", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(proxy.cut.is_set, 60, what="the answer lost")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proxy.stop()
    assert proc.returncode == 1, err
    assert "interrupted before Redis said whether it made its part of the deletion of zmq-channel a" in err
    assert "the ODB change is undone; run it again once Redis answers, which completes it" in err
    assert env.names("zmq-channel") == ["a"]
    run_again(env, proxy, argv)
    assert env.names("zmq-channel") == [] and env.up.exists(env.handoff("a").deleted)


# A `zato conn` whose ODB write, once it returns, is followed at once by a Ctrl-C (SIGINT to
# itself): the instant between the ODB write and the Redis step, which no signal from outside
# can be timed to hit. ODB and Redis are the real ones.
CTRL_C_AFTER_THE_ODB_WRITE = """
import os, signal, sys
from zato.cli.main import main
from zato.odb import connectors
write = getattr(connectors, sys.argv[1])
def then_ctrl_c(*args, **kwargs):  # the first time: an undo may call it again
    setattr(connectors, sys.argv[1], write)
    done = write(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)
    return done
setattr(connectors, sys.argv[1], then_ctrl_c)
sys.exit(main(sys.argv[2:]))
"""

HELD = (
    "zato: interrupted: finishing this change first (undone if Redis has not been asked yet, else"
    " completed); wait"
)


def run_ctrl_c_after_the_odb_write(env: Env, write: str, *argv: str) -> subprocess.CompletedProcess:
    """`zato conn argv` (Redis straight through the forwarder), Ctrl-C once `write` returned;
    the events the servers were sent meanwhile."""
    sub = env.up.pubsub()
    sub.subscribe(Keys(env.cluster).events)
    sub.get_message(timeout=5)
    proxy = env.proxy("no command holds this")
    proxy.start()
    try:
        proc = popen_interruptible(
            [sys.executable, "-c", CTRL_C_AFTER_THE_ODB_WRITE, write, "conn", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proxy.stop()
    events = []
    while (msg := sub.get_message(timeout=0.5)) is not None:
        events.append(msg["data"])
    sub.close()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.events = events  # type: ignore[attr-defined]
    return done


@pytest.mark.parametrize("command", ["create", "rename", "delete"])
def test_a_ctrl_c_between_the_odb_write_and_the_redis_step_undoes_the_change_and_says_so(env, command):
    """Before: exit 130 without a word, the ODB changed and Redis never told: an amqp-outgoing
    created or renamed missing from the queues /metrics reads (or listed under its old name), one
    deleted still listed; the servers not told either."""
    if command != "create":
        definitions.create(env.odb, env.up, env.cluster, "amqp-outgoing", {"name": "a", "def": "rabbit"})
    kind, name = "amqp-outgoing", ("--name", "a")
    write, argv, what = {
        "create": ("create", ("create", kind, env.dir, *name, "--def", "rabbit"), f"{kind} a"),
        "rename": ("edit", ("edit", kind, env.dir, *name, "--new-name", "b"), f"the change to {kind} a"),
        "delete": ("delete", ("delete", kind, env.dir, *name), f"the deletion of {kind} a"),
    }[command]
    names, listed = env.names("amqp-outgoing"), registered(env.up, env.cluster)
    proc = run_ctrl_c_after_the_odb_write(env, write, *argv)
    assert (env.names("amqp-outgoing"), registered(env.up, env.cluster)) == (names, listed)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        HELD,
        f"zato: error: {what} interrupted (Ctrl-C) before its Redis part was sent (nothing changed:"
        " the ODB change is undone)",
    ], proc.stderr
    assert not proc.events  # type: ignore[attr-defined]
    run_again(env, env.proxy("no command holds this"), argv)  # not interrupted: done
    assert registered(env.up, env.cluster) == (
        [] if command == "delete" else [("amqp", "b" if command == "rename" else "a")]
    )


def test_a_ctrl_c_after_the_odb_write_of_a_change_without_a_redis_part_completes_it_and_says_so(env):
    """An amqp-def has no Redis part: once it is in the ODB the event follows and the command
    says it went through. Before: exit 130 without a word, saved in the ODB, the servers not told."""
    argv = ("create", "amqp-def", env.dir, "--name", "other")
    proc = run_ctrl_c_after_the_odb_write(env, "create", *argv)
    assert proc.events, "the servers were not told"  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("created amqp-def other:")
    assert proc.stderr.splitlines() == [
        HELD,
        "warning: interrupted (Ctrl-C) once amqp-def other was saved: completed all the same, not left"
        " half-made",
    ], proc.stderr
    assert env.names("amqp-def") == ["other", "rabbit"]


# --- the last step, the event that tells the servers: its answer lost ----------------------


def test_an_event_sent_whose_answer_was_lost_says_whether_the_servers_were_told_is_unknown(env):
    """Before: 'the servers were not told' while they had been (the event was published) and
    'each applies it once its own Redis connection comes back, or when it restarts', which a
    server whose connection never broke would wait for; a server reads changed definitions
    again within seconds all the same."""
    proc = run_cut(env, env.proxy("events"), "create", "amqp-def", env.dir, "--name", "other")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert env.names("amqp-def") == ["other", "rabbit"]  # saved: the servers need no more
    assert proc.events, "the event reached Redis's subscribers"  # type: ignore[attr-defined]
    error = proc.stderr.strip()
    assert error.startswith(
        "zato: error: amqp-def other is saved in the ODB, but whether the servers were"
    ), error
    assert "told is unknown: the event was sent and Redis's answer lost (" in error
    assert "not told" not in error and "when it restarts" not in error
    assert error.endswith(
        "told or not, they apply it within seconds: the lease holder reads the connection"
        " definitions again every 5 s, and each worker a definition it uses 2 s after it"
        " last read it; nothing to do"
    ), error


def test_an_event_redis_refused_says_the_servers_were_not_told(env):
    """Redis answered the event with an error (an ACL without PUBLISH): it was not published."""
    user = f"zato-{env.cluster}"
    env.up.acl_setuser(
        user, enabled=True, passwords=["+pw-polish"], keys=["*"], commands=["+@all", "-publish"]
    )
    try:
        conf = os.path.join(env.dir, "config", "server.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(
                text.replace(f"redis://127.0.0.1:{env.port}/0", f"redis://{user}:pw-polish@127.0.0.1:6379/0")
            )
        proc = env.zato("create", "amqp-def", env.dir, "--name", "other")
    finally:
        env.up.acl_deluser(user)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "amqp-def other is saved in the ODB, but the servers were not told (" in proc.stderr, proc.stderr
    assert "unknown" not in proc.stderr and "pw-polish" not in proc.stderr
