"""ZygoteOS decides what the zygote may fork; everything else goes to plain processes. The
main loop never waits for a zygote that does not answer: it is lost (killed) instead."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
from dataclasses import replace

from zato.config.settings import RedisSettings, ServerSettings
from zato.connector import zygote
from zato.connector.process import Child, ConnectorSpec, RestartPolicy, State
from zato.connector.zygote import ZygoteOS, run_args

RUN = (sys.executable, "-m", "zato.connector.run", "/srv/server1", "zmq-channel", "orders")
SPEC = ConnectorSpec("zmq-channel:orders", "zmq-channel", RUN, "h1", {"name": "orders"})


class FakeRealOS:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def spawn(self, argv, env, definition=None):  # noqa: ANN001, ANN201
        self.calls.append(("spawn", argv, env, definition))
        return "popen"

    def poll(self, handle):  # noqa: ANN001, ANN201
        self.calls.append(("poll", handle))
        return 3

    def signal(self, handle, sig):  # noqa: ANN001, ANN201
        self.calls.append(("signal", handle, sig))


def test_only_connector_runs_of_this_interpreter_are_forked() -> None:
    assert run_args(RUN) == ["/srv/server1", "zmq-channel", "orders"]
    assert run_args(("/usr/bin/python2", *RUN[1:])) is None  # another interpreter: exec it
    assert run_args((sys.executable, "-m", "some.other.module", "a", "b", "c")) is None
    assert run_args(("sleep", "60")) is None


def test_without_a_ready_zygote_children_are_plain_processes() -> None:
    real = FakeRealOS()
    settings = ServerSettings(
        "/srv/server1", "server1", "c1", "127.0.0.1", 17010, 1, "sqlite://", RedisSettings(), "admin", "", "s"
    )
    os_ = ZygoteOS(settings, fallback=real)  # not started: no zygote yet
    handle = os_.spawn(RUN, {"ZATO_EPOCH": "4"}, {"name": "orders"})
    assert handle == "popen"
    assert os_.poll(handle) == 3
    os_.signal(handle, signal.SIGTERM)
    assert real.calls == [
        ("spawn", RUN, {"ZATO_EPOCH": "4"}, {"name": "orders"}),
        ("poll", "popen"),
        ("signal", "popen", signal.SIGTERM),
    ]


# -- a zygote that answers late, or not at all --------------------------------------------------
# The zygote's end of the socketpair is the test's: it answers (or not) by hand.


class FakeZygoteProc:
    pid = 4242

    def __init__(self) -> None:
        self.killed = False

    def poll(self):  # noqa: ANN201
        return -9 if self.killed else None

    def kill(self) -> None:
        self.killed = True

    def wait(self, timeout=None):  # noqa: ANN001, ANN201
        return -9


class Popen:
    def __init__(self, pid: int) -> None:
        self.pid = pid


class PlainOS(FakeRealOS):
    def spawn(self, argv, env, definition=None):  # noqa: ANN001, ANN201
        super().spawn(argv, env, definition)
        return Popen(9000 + len(self.calls))

    def poll(self, handle):  # noqa: ANN001, ANN201
        return None


class ClockedZygoteOS(ZygoteOS):
    clock = 100.0

    def now(self) -> float:
        return self.clock


def ready_zygote(monkeypatch) -> tuple[ClockedZygoteOS, socket.socket, PlainOS]:  # noqa: ANN001
    monkeypatch.setattr(zygote, "SPAWN_WAIT", 0.0)  # the test answers when it chooses
    settings = ServerSettings(
        "/srv/server1", "server1", "c1", "127.0.0.1", 17010, 1, "sqlite://", RedisSettings(), "admin", "", "s"
    )
    plain = PlainOS()
    os_ = ClockedZygoteOS(settings, fallback=plain, kill_answer=0.1)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    os_.proc, os_.sock, os_.ready, os_.heard_at = FakeZygoteProc(), ours, True, os_.clock
    return os_, theirs, plain


def asked(theirs: socket.socket) -> dict:
    return json.loads(theirs.recv(1 << 20))


def say(theirs: socket.socket, message: dict) -> None:
    theirs.send(json.dumps(message).encode())


def test_a_spawn_is_not_waited_for_and_its_late_answer_gives_the_pid(monkeypatch) -> None:  # noqa: ANN001
    os_, theirs, _ = ready_zygote(monkeypatch)
    child = Child(SPEC, RestartPolicy(startsecs=0.0), os_)
    child.start({"ZATO_EPOCH": "4"})
    assert child.state is State.STARTING and child.pid is None  # asked, not answered
    assert asked(theirs)["op"] == "spawn"
    child.tick()
    assert child.state is State.STARTING  # not RUNNING without a pid
    say(theirs, {"spawned": 321})
    child.tick()
    assert child.state is State.STARTING and child.pid == 321  # up from now
    child.tick()
    assert child.state is State.RUNNING
    child.stop()
    assert asked(theirs) == {"op": "signal", "pid": 321, "sig": int(signal.SIGTERM)}


def test_a_signal_asked_before_the_answer_goes_with_it(monkeypatch) -> None:  # noqa: ANN001
    os_, theirs, _ = ready_zygote(monkeypatch)
    child = Child(SPEC, RestartPolicy(), os_)
    child.start({})
    child.stop()
    assert child.state is State.STOPPING
    asked(theirs)
    say(theirs, {"spawned": 321})
    child.tick()
    assert asked(theirs) == {"op": "signal", "pid": 321, "sig": int(signal.SIGTERM)}
    say(theirs, {"exit": 321, "code": -15})
    child.tick()
    assert child.state is State.STOPPED


def test_a_spawn_unanswered_for_the_reply_timeout_starts_a_plain_process(monkeypatch, caplog) -> None:  # noqa: ANN001
    os_, _, plain = ready_zygote(monkeypatch)
    proc = os_.proc
    child = Child(SPEC, RestartPolicy(), os_)
    child.start({"ZATO_EPOCH": "4"})
    os_.clock += zygote.REPLY_TIMEOUT
    child.tick()
    assert proc.killed and os_.proc is None  # lost: killed, restarted later
    assert plain.calls == [("spawn", SPEC.argv, {"ZATO_EPOCH": "4"}, SPEC.definition)]
    assert child.pid == 9001 and child.state is State.STARTING
    assert "connector zygote (pid 4242) lost: it did not answer a spawn request within 2 s" in caplog.text
    assert "1 connector(s) it did not fork start as plain processes" in caplog.text


def test_a_kill_of_a_connector_the_zygote_did_not_answer_for_loses_it_at_once(monkeypatch) -> None:  # noqa: ANN001
    os_, theirs, plain = ready_zygote(monkeypatch)
    proc = os_.proc
    running = Child(replace(SPEC, name="zmq-channel:other"), RestartPolicy(), os_)
    running.start({})
    asked(theirs)
    say(theirs, {"spawned": 500})
    running.tick()
    child = Child(SPEC, RestartPolicy(), os_)
    child.start({})
    os_.clock += 0.5  # silent since
    with os_.stopping_all():  # a step-down
        for c in (running, child):
            c.stop()
        running.kill_now()
        assert not proc.killed  # it may still report that one within kill_answer
        child.kill_now()
        assert proc.killed  # a zygote silent that long: lost now, its forked connectors die with it
    child.tick()
    assert child.state is State.STOPPED and plain.calls == []  # stopped: not started as a plain process


def test_a_kill_not_reported_done_within_kill_answer_loses_the_zygote(monkeypatch, caplog) -> None:  # noqa: ANN001
    os_, theirs, _ = ready_zygote(monkeypatch)
    proc = os_.proc
    child = Child(SPEC, RestartPolicy(), os_)
    child.start({})
    asked(theirs)
    say(theirs, {"spawned": 321})
    child.tick()
    with os_.stopping_all():  # a step-down
        child.stop(0.0)
        child.kill_now()
        child.tick()
        assert not proc.killed
        os_.clock += 0.15
        child.tick()
        assert proc.killed
    assert "did not report connector pid 321 killed within 0.10 s of its SIGKILL" in caplog.text


def test_a_single_kill_gives_the_zygote_the_reply_timeout(monkeypatch) -> None:  # noqa: ANN001
    os_, theirs, _ = ready_zygote(monkeypatch)
    proc = os_.proc
    child = Child(SPEC, RestartPolicy(), os_)
    child.start({})
    asked(theirs)
    say(theirs, {"spawned": 321})
    child.tick()
    child.stop(0.0)  # a retired or hung connector: losing the zygote would end every other one too
    child.kill_now()
    os_.clock += 0.15
    child.tick()
    assert not proc.killed
    os_.clock += zygote.REPLY_TIMEOUT
    child.tick()
    assert proc.killed


def test_a_fork_that_failed_late_backs_off(monkeypatch) -> None:  # noqa: ANN001
    os_, theirs, _ = ready_zygote(monkeypatch)
    child = Child(SPEC, RestartPolicy(), os_)
    child.start({})
    say(theirs, {"error": "Resource temporarily unavailable", "errno": 11})
    child.tick()
    assert child.state is State.BACKOFF
    assert "Resource temporarily unavailable" in child.last_error


def test_a_zygote_silent_for_a_while_is_pinged_and_lost_if_it_does_not_answer(monkeypatch, caplog) -> None:  # noqa: ANN001
    os_, theirs, _ = ready_zygote(monkeypatch)
    proc = os_.proc
    os_.tick()
    theirs.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        theirs.recv(1 << 20)
        raise AssertionError("pinged a zygote that has just spoken")
    os_.clock += zygote.PING_EVERY
    os_.tick()
    assert asked(theirs) == {"op": "ping"}
    say(theirs, {"pong": 4242})
    os_.clock += zygote.REPLY_TIMEOUT
    os_.tick()  # answered: not lost
    assert not proc.killed
    os_.clock += zygote.PING_EVERY
    os_.tick()
    assert asked(theirs) == {"op": "ping"}
    os_.clock += zygote.REPLY_TIMEOUT
    os_.tick()
    assert proc.killed
    assert "connector zygote (pid 4242) lost: it did not answer a ping within 2 s" in caplog.text


def starting_zygote(monkeypatch) -> tuple[ClockedZygoteOS, socket.socket]:  # noqa: ANN001
    """A zygote just started (as by _start): it has not said ready yet."""
    os_, theirs, _ = ready_zygote(monkeypatch)
    os_.ready, os_.started_at = False, os_.clock
    return os_, theirs


def test_a_zygote_that_does_not_say_ready_in_time_is_lost(monkeypatch, caplog) -> None:  # noqa: ANN001
    os_, theirs = starting_zygote(monkeypatch)
    proc = os_.proc
    os_.clock += zygote.READY_TIMEOUT - 0.1
    os_.tick()
    assert not proc.killed and os_.proc is proc  # still importing: waited for
    theirs.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        theirs.recv(1 << 20)
        raise AssertionError("pinged a zygote that has not said ready")
    os_.clock += 0.1
    os_.tick()
    assert proc.killed and os_.proc is None
    assert os_.next_start == os_.clock + zygote.RESTART_DELAY  # restarted after the backoff
    why = f"it did not say ready within {zygote.READY_TIMEOUT:g} s of its start"
    doubled = f"(the next gets {2 * zygote.READY_TIMEOUT:g} s)"
    assert f"connector zygote (pid 4242) lost: {why} {doubled}; 0 connector(s) died with it" in caplog.text
    assert os_.ready_limit == 2 * zygote.READY_TIMEOUT  # a host too slow for it gets its zygote later


def test_the_ready_limit_doubles_while_zygotes_are_lost_unready_and_resets_once_one_is_ready(
    monkeypatch,  # noqa: ANN001
) -> None:
    os_, theirs = starting_zygote(monkeypatch)
    limits = []
    for _ in range(6):  # each a zygote that never says ready, started again (as _start does)
        ours, _theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        os_.proc, os_.sock, os_.ready, os_.started_at = FakeZygoteProc(), ours, False, os_.clock
        limits.append(os_.ready_limit)
        os_.clock += os_.ready_limit
        os_.tick()
        assert os_.proc is None  # lost
    assert limits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    os_, theirs = starting_zygote(monkeypatch)
    os_.ready_limit = 40.0
    say(theirs, {"ready": 4242})
    os_.tick()
    assert os_.ready and os_.ready_limit == zygote.READY_TIMEOUT


def test_a_zygote_that_says_ready_in_time_is_kept_past_the_ready_timeout(monkeypatch) -> None:  # noqa: ANN001
    os_, theirs = starting_zygote(monkeypatch)
    proc = os_.proc
    os_.clock += zygote.READY_TIMEOUT - 0.1
    say(theirs, {"ready": 4242})
    os_.clock += 0.2  # read late (a busy main loop): it said ready in time all the same
    os_.tick()
    assert os_.ready and not proc.killed
    os_.clock += zygote.READY_TIMEOUT
    os_.tick()
    assert not proc.killed and asked(theirs) == {"op": "ping"}  # ready: answers pings from now on
