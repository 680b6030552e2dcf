"""`zato start`'s gate: a component spawned at once reports its checks on a socket and goes on
only when `zato start` says so (zato.lifecycle.process.Gate, zato.lifecycle.entry.pass_gate)."""

from __future__ import annotations

import sys
import threading

import pytest

from zato.common.errors import ComponentError, CoordError
from zato.lifecycle import entry
from zato.lifecycle.process import Gate, spawn_detached


class Child(threading.Thread):
    """pass_gate(check) as a spawned component runs it, on the component's end of the socket."""

    def __init__(self, gate: Gate, check, monkeypatch):
        super().__init__(daemon=True)
        monkeypatch.setenv(entry.GATE_ENV, str(gate.theirs.detach()))
        self.check, self.passed = check, None

    def run(self) -> None:
        self.passed = entry.pass_gate(self.check)


def noop(_line: str) -> None:
    pass


def test_warnings_are_relayed_and_the_component_goes_on_when_told(monkeypatch):
    gate, said = Gate(), []
    child = Child(gate, lambda say: say("warning: Redis takes commands\nwithout a password"), monkeypatch)
    child.start()
    gate.wait_checked(said.append, None, 10, "server s1")
    assert said == ["warning: Redis takes commands without a password"]
    assert child.is_alive()  # waiting at the gate
    gate.open()
    child.join(10)
    assert child.passed is True


def test_a_failed_check_is_one_line_and_the_component_does_not_go_on(monkeypatch):
    gate = Gate()

    def check(_say):
        raise CoordError("server name 's1' is taken by the live server at 10.0.0.2:17010 (pid 7)")

    child = Child(gate, check, monkeypatch)
    child.start()
    with pytest.raises(ComponentError, match=r"^server name 's1' is taken by the live server"):
        gate.wait_checked(noop, None, 10, "server s1")
    gate.shut()
    child.join(10)
    assert child.passed is False


def test_shut_or_gone_zato_start_stops_the_component(monkeypatch):
    gate = Gate()
    child = Child(gate, None, monkeypatch)
    child.start()
    gate.wait_checked(noop, None, 10, "server s1")
    gate.shut()  # another component's check failed, or `zato start` was interrupted
    child.join(10)
    assert child.passed is False


def test_a_component_that_dies_before_its_checks_are_done_is_reported_with_its_log(tmp_path):
    log = str(tmp_path / "stdout.log")
    gate = Gate()
    argv = [sys.executable, "-c", "import sys; print('cannot import the server'); sys.exit(3)"]
    proc = spawn_detached(argv, log, gate=gate)
    with pytest.raises(ComponentError, match="server s1 exited with code 3 while starting") as e:
        gate.wait_checked(noop, proc, 10, "server s1", (log,))
    gate.shut()
    assert "cannot import the server" in str(e.value)


def test_without_a_gate_the_component_goes_on_at_once(monkeypatch):
    monkeypatch.delenv(entry.GATE_ENV, raising=False)
    assert entry.pass_gate(lambda _say: pytest.fail("checks are the caller's without a gate")) is True


@pytest.mark.parametrize("value", ["not-a-number", "987654"])
def test_a_gate_variable_set_by_hand_is_ignored_with_a_warning(monkeypatch, caplog, value):
    monkeypatch.setenv(entry.GATE_ENV, value)
    assert entry.pass_gate(noop_check) is True
    assert f"ignoring {entry.GATE_ENV}={value!r}" in caplog.text


def noop_check(_say) -> None:
    pass
