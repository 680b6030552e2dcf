"""The connector child state machine, driven through a fake OS seam (no processes)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import pytest

from zato.common.errors import EXIT_CONFIG
from zato.connector.process import Child, Manager, RestartPolicy, State
from zato.connector.registry import ConnectorSpec

POLICY = RestartPolicy(
    start=1.0, step=1.0, max=3.0, fatal_after=3, startsecs=0.5, stop_timeout=0.3, drain_timeout=5.0
)
ENV = {"ZATO_EPOCH": "7", "ZATO_SERVER_DIR": "/srv/server1"}


@dataclass
class FakeProc:
    pid: int
    argv: tuple
    env: dict
    definition: dict | None = None
    code: int | None = None
    signals: list = field(default_factory=list)
    dies_on_term: bool = True


class FakeOS:
    def __init__(self) -> None:
        self.t = 100.0
        self.procs: list[FakeProc] = []
        self.fail_spawn: OSError | None = None

    def spawn(self, argv, env, definition=None):  # noqa: ANN001, ANN201
        if self.fail_spawn:
            raise self.fail_spawn
        proc = FakeProc(1000 + len(self.procs), argv, dict(env), definition)
        self.procs.append(proc)
        return proc

    def poll(self, handle):  # noqa: ANN001, ANN201
        return handle.code

    def signal(self, handle, sig):  # noqa: ANN001, ANN201
        handle.signals.append(sig)
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and handle.dies_on_term):
            handle.code = -sig

    def now(self) -> float:
        return self.t

    @property
    def last(self) -> FakeProc:
        return self.procs[-1]


def spec(name: str = "zmq-channel:orders", config_hash: str = "h1") -> ConnectorSpec:
    definition = {"name": name, "address": f"tcp://127.0.0.1:{config_hash}"}
    return ConnectorSpec(name, "zmq-channel", ("python", "-m", "conn", name), config_hash, definition)


def started_child(os_: FakeOS) -> Child:
    child = Child(spec(), POLICY, os_)
    child.start(ENV)
    return child


def test_a_child_gets_the_epoch_and_server_dir_and_runs_after_startsecs() -> None:
    os_ = FakeOS()
    child = started_child(os_)
    assert child.state is State.STARTING
    assert os_.last.env == ENV
    assert os_.last.argv == ("python", "-m", "conn", "zmq-channel:orders")
    os_.t += 0.6
    assert child.tick()
    assert child.state is State.RUNNING
    assert child.snapshot()["pid"] == os_.last.pid


def test_a_child_that_ran_for_long_and_exits_is_restarted_at_once_and_counted() -> None:
    os_ = FakeOS()
    child = started_child(os_)
    os_.t += 0.5
    child.tick()
    os_.t += POLICY.stable_after
    os_.last.code = 1
    child.tick()
    assert child.state is State.STARTING
    assert len(os_.procs) == 2
    snap = child.snapshot()
    assert snap["restarts"] == 1
    assert snap["last_error"] == "exited with code 1"


def test_fast_failures_back_off_then_give_up_into_fatal(caplog) -> None:  # noqa: ANN001
    os_ = FakeOS()
    child = started_child(os_)
    delays = []
    for _ in range(POLICY.fatal_after - 1):
        os_.last.code = 2
        child.tick()
        assert child.state is State.BACKOFF
        delays.append(child.retry_at - os_.t)
        os_.t += 0.1
        child.tick()
        assert child.state is State.BACKOFF  # not before the delay is over
        os_.t = child.retry_at
        child.tick()
        assert child.state is State.STARTING
    assert delays == [1.0, 2.0]
    os_.last.code = 2
    child.tick()
    assert child.state is State.FATAL
    assert "STARTING->FATAL pid" not in caplog.text
    line = (
        "child zmq-channel:orders STARTING->FATAL: pid 1002 exited with code 2; gave up after 3 failed starts"
    )
    assert line in caplog.text
    os_.t += 100
    child.tick()
    assert child.state is State.FATAL and len(os_.procs) == POLICY.fatal_after


def test_backoff_delay_is_capped() -> None:
    assert [POLICY.delay(n) for n in range(1, 6)] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_an_early_exit_after_running_still_counts_as_a_failed_start() -> None:
    os_ = FakeOS()
    child = started_child(os_)
    os_.t += 1
    child.tick()
    assert child.state is State.RUNNING
    os_.last.code = 1
    child.tick()
    assert child.state is State.BACKOFF and child.failures == 1


def test_staying_up_resets_the_failure_count() -> None:
    os_ = FakeOS()
    child = started_child(os_)
    os_.last.code = 1
    child.tick()
    os_.t = child.retry_at
    child.tick()
    os_.t += POLICY.stable_after + 1
    child.tick()
    os_.last.code = 1
    child.tick()
    assert child.state is State.STARTING and child.failures == 0


def test_a_configuration_error_is_fatal_at_once() -> None:
    os_ = FakeOS()
    child = started_child(os_)
    os_.last.code = EXIT_CONFIG
    child.tick()
    assert child.state is State.FATAL and len(os_.procs) == 1
    assert child.snapshot()["last_error"] == "exited with code 3"


def test_a_program_that_cannot_be_spawned_backs_off_with_a_clear_error() -> None:
    os_ = FakeOS()
    os_.fail_spawn = FileNotFoundError(2, "No such file or directory")
    child = started_child(os_)
    assert child.state is State.BACKOFF
    assert child.last_error == "cannot start 'python': No such file or directory"


def test_stop_sends_sigterm_and_then_sigkill_after_the_timeout() -> None:
    os_ = FakeOS()
    child = started_child(os_)
    os_.last.dies_on_term = False
    child.stop()
    assert child.state is State.STOPPING
    assert os_.last.signals == [signal.SIGTERM]
    os_.t += 0.1
    child.tick()
    assert os_.last.signals == [signal.SIGTERM]
    os_.t += 0.3
    child.tick()
    assert os_.last.signals == [signal.SIGTERM, signal.SIGKILL]
    child.tick()
    assert child.state is State.STOPPED
    assert child.snapshot()["pid"] is None


def test_reconcile_starts_missing_stops_removed_and_restarts_only_changed() -> None:
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    a, b, c = spec("a", "1"), spec("b", "1"), spec("c", "1")
    manager.reconcile({"a": a, "b": b, "c": c}, ENV)
    first = {p.argv[-1]: p for p in os_.procs}
    assert set(first) == {"a", "b", "c"}
    manager.reconcile({"a": a, "b": spec("b", "2"), "d": spec("d", "1")}, ENV)
    manager.tick()
    assert first["a"].signals == []  # unchanged: untouched
    assert first["b"].signals == [signal.SIGTERM]  # changed: restarted
    assert first["c"].signals == [signal.SIGTERM]  # removed: stopped
    assert sorted(manager.children) == ["a", "b", "d"]
    assert [p.argv[-1] for p in os_.procs].count("b") == 2
    assert os_.last.definition == {"name": "d", "address": "tcp://127.0.0.1:1"}
    again = next(p for p in os_.procs if p.argv[-1] == "b" and p is not first["b"])
    assert again.definition == {"name": "b", "address": "tcp://127.0.0.1:2"}  # the new definition
    assert [c["name"] for c in manager.snapshot()] == ["a", "b", "d"]


def test_stop_all_kills_stragglers_and_forgets_every_child() -> None:
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    manager.reconcile({"a": spec("a"), "b": spec("b")}, ENV)
    os_.procs[1].dies_on_term = False

    def sleep(seconds: float) -> None:
        os_.t += 0.1

    assert manager.stop_all(timeout=0.3, sleep=sleep)
    assert os_.procs[0].signals == [signal.SIGTERM]
    assert os_.procs[1].signals == [signal.SIGTERM, signal.SIGKILL]
    assert manager.children == {} and not manager.active


def test_fatal_child_is_retried_when_its_definition_changes() -> None:
    os_ = FakeOS()
    manager = Manager(RestartPolicy(fatal_after=1), os_)
    manager.reconcile({"a": spec("a", "1")}, ENV)
    os_.last.code = 1
    manager.tick()
    assert manager.children["a"].state is State.FATAL
    manager.reconcile({"a": spec("a", "2")}, ENV)
    assert manager.children["a"].state is State.STARTING


def test_an_operator_restart_stops_the_child_then_starts_it_again() -> None:
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    manager.reconcile({"zmq-channel:orders": spec()}, ENV)
    first = os_.last
    assert manager.restart("zmq-channel:orders") is True
    assert manager.restart("zmq-channel:nothing") is False
    assert first.signals == [signal.SIGTERM]  # asked to stop first, never two at once
    manager.tick()
    child = manager.children["zmq-channel:orders"]
    assert os_.last is not first and os_.last.env == ENV  # a new process with the same env
    assert child.state is State.STARTING and child.restarts == 1


def test_a_changed_or_removed_child_may_finish_its_work_but_stop_all_does_not_wait_for_it() -> None:
    # A definition change keeps the lease: the old child gets drain_timeout (its in-flight
    # invocations finish and are acked: no duplicate) while its successor already runs.
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    manager.reconcile({"a": spec("a", "1"), "b": spec("b", "1")}, ENV)
    old_a, old_b = os_.procs
    old_a.dies_on_term = old_b.dies_on_term = False
    manager.reconcile({"a": spec("a", "2")}, ENV)
    os_.t += POLICY.stop_timeout + 0.1
    manager.tick()
    assert old_a.signals == [signal.SIGTERM] and old_b.signals == [signal.SIGTERM]  # not killed yet
    assert manager.children["a"].state is State.STARTING  # the new one runs beside it
    os_.t += POLICY.drain_timeout
    manager.tick()
    assert old_a.signals == [signal.SIGTERM, signal.SIGKILL]  # drained too long: killed
    # an operator's restart drains too; losing the lease (stop_all) does not wait for that
    manager.tick()
    new_a = os_.last
    new_a.dies_on_term = False
    manager.restart("a")
    os_.t += POLICY.stop_timeout + 0.1
    manager.tick()
    assert new_a.signals == [signal.SIGTERM]

    def sleep(seconds: float) -> None:
        os_.t += 0.1

    assert manager.stop_all(timeout=0.3, sleep=sleep)
    assert new_a.signals == [signal.SIGTERM, signal.SIGKILL]


class FakeBeats:
    """Progress stamps by pid, as zato.connector.beat.Files gives them."""

    def __init__(self) -> None:
        self.stamps: dict[int, int] = {}
        self.forgotten: list[int] = []

    def stamp(self, pid: int) -> int | None:
        return self.stamps.get(pid)

    def forget(self, pid: int) -> None:
        self.forgotten.append(pid)


def test_a_running_child_without_progress_for_hang_after_is_killed_and_started_again() -> None:
    policy = RestartPolicy(**{**POLICY.__dict__, "hang_after": 30.0})
    os_, beats = FakeOS(), FakeBeats()
    child = Child(spec(), policy, os_, beats)
    child.start(ENV)
    first = os_.last
    os_.t += 1
    child.tick()
    assert child.state is State.RUNNING
    for second in range(60):  # it beats: never hung, however long it runs
        beats.stamps[first.pid] = second
        os_.t += 1
        child.tick()
    assert first.signals == []
    for _ in range(29):  # its stamp stays the same from now on
        os_.t += 1
        child.tick()
    assert first.signals == []
    os_.t += 1.5
    child.tick()
    assert first.signals == [signal.SIGKILL]
    assert child.last_error.startswith("hung: no progress for 30")
    child.tick()  # its exit: started again at once (it ran longer than stable_after)
    assert os_.last is not first and child.state is State.STARTING and child.restarts == 1
    assert beats.forgotten == [first.pid]


def test_a_child_without_a_stamp_or_with_hang_after_zero_is_never_taken_for_hung() -> None:
    """No stamp: its file could not be made (a full disk). hang_after 0: the check is off."""
    for hang_after, stamp in ((5.0, None), (0.0, 7)):
        os_, beats = FakeOS(), FakeBeats()
        child = Child(spec(), RestartPolicy(**{**POLICY.__dict__, "hang_after": hang_after}), os_, beats)
        child.start(ENV)
        if stamp is not None:
            beats.stamps[os_.last.pid] = stamp  # and it never changes
        for _ in range(100):
            os_.t += 1
            child.tick()
        assert os_.last.signals == [] and child.state is State.RUNNING


def test_a_supervisor_that_was_stopped_itself_gives_no_verdict_on_its_children() -> None:
    """A paused host (or a SIGSTOP of the whole server): when the supervisor runs again, its
    children have not beaten either, for as long. That is not a hang of theirs."""
    policy = RestartPolicy(**{**POLICY.__dict__, "hang_after": 30.0})
    os_, beats = FakeOS(), FakeBeats()
    child = Child(spec(), policy, os_, beats)
    child.start(ENV)
    beats.stamps[os_.last.pid] = 1
    for _ in range(3):  # RUNNING, its stamp seen
        os_.t += 1
        child.tick()
    os_.t += 300  # one tick five minutes after the one before
    child.tick()
    beats.stamps[os_.last.pid] = 2  # and the child beats again once it runs
    os_.t += 1
    child.tick()
    assert os_.last.signals == [] and child.state is State.RUNNING


def _outgoing(config_hash: str) -> ConnectorSpec:
    name = "amqp-outgoing:out"
    return ConnectorSpec(name, "amqp-outgoing", ("python", "-m", "conn", name), config_hash, {"name": "out"})


def test_an_edited_outgoing_connection_starts_its_new_process_once_the_old_one_exited() -> None:
    """Both at once would publish the old one's unconfirmed messages twice (test_outgoing_edit)."""
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    manager.reconcile({"amqp-outgoing:out": _outgoing("h1")}, ENV)
    old = os_.last
    old.dies_on_term = False  # it waits for its broker's confirms
    manager.reconcile({"amqp-outgoing:out": _outgoing("h2")}, ENV)
    manager.reconcile({"amqp-outgoing:out": _outgoing("h3")}, ENV)  # edited again meanwhile
    manager.tick()
    assert len(os_.procs) == 1 and manager.children["amqp-outgoing:out"].state is State.STOPPED
    old.code = 0
    manager.tick()
    assert len(os_.procs) == 2 and manager.children["amqp-outgoing:out"].spec.config_hash == "h3"
    assert manager.children["amqp-outgoing:out"].state is State.STARTING


def _renamed(name: str, config_hash: str, ident: int = 7) -> ConnectorSpec:
    full = f"amqp-outgoing:{name}"
    definition = {"id": ident, "name": name}
    return ConnectorSpec(full, "amqp-outgoing", ("python", "-m", "conn", full), config_hash, definition)


def test_a_renamed_outgoing_connection_starts_its_new_process_once_the_old_one_exited() -> None:
    """Before, a rename started the new name's process at once, beside the old name's (the same
    definition): two publishers, and what was left under the old name stayed there."""
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    handed: list[tuple[str, str]] = []
    manager.on_renamed = lambda old, new: handed.append((old.name, new.name))
    manager.reconcile({"amqp-outgoing:out": _renamed("out", "h1")}, ENV)
    old = os_.last
    old.dies_on_term = False  # it waits for its broker's confirms
    manager.reconcile({"amqp-outgoing:out2": _renamed("out2", "h2")}, ENV)
    manager.reconcile({"amqp-outgoing:out3": _renamed("out3", "h3")}, ENV)  # renamed again meanwhile
    manager.tick()
    assert len(os_.procs) == 1 and old.signals == [signal.SIGTERM] and handed == []
    assert list(manager.children) == ["amqp-outgoing:out3"]
    old.code = 0
    manager.tick()
    assert len(os_.procs) == 2 and manager.children["amqp-outgoing:out3"].state is State.STARTING
    out3 = "amqp-outgoing:out3"
    assert handed == [("amqp-outgoing:out", out3), ("amqp-outgoing:out2", out3)]


def test_another_definition_under_a_new_name_starts_at_once() -> None:
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    manager.on_renamed = lambda old, new: pytest.fail("not a rename")
    manager.reconcile({"amqp-outgoing:out": _renamed("out", "h1", ident=1)}, ENV)
    os_.last.dies_on_term = False
    manager.reconcile({"amqp-outgoing:other": _renamed("other", "h2", ident=2)}, ENV)
    assert len(os_.procs) == 2 and manager.children["amqp-outgoing:other"].state is State.STARTING


def test_an_edited_channel_starts_its_new_process_at_once() -> None:
    os_ = FakeOS()
    manager = Manager(POLICY, os_)
    manager.reconcile({"zmq-channel:orders": spec(config_hash="h1")}, ENV)
    os_.last.dies_on_term = False
    manager.reconcile({"zmq-channel:orders": spec(config_hash="h2")}, ENV)
    assert len(os_.procs) == 2 and manager.children["zmq-channel:orders"].state is State.STARTING
