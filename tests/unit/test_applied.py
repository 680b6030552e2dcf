"""zato.connector.applied.verdict: when `zato conn edit --wait` says the holder applied an edit."""

from __future__ import annotations

from zato.connector.applied import Expect, seen, verdict


def status(*children: tuple[str, str, int | None]) -> dict:
    return {"server": "server2", "children": [{"name": n, "state": s, "pid": p} for n, s, p in children]}


def test_a_restart_is_applied_once_a_new_pid_runs() -> None:
    expect = Expect("amqp-outgoing:out", active=True, pid_before=100)
    assert verdict(expect, status(("amqp-outgoing:out", "RUNNING", 100))) is None  # not yet restarted
    assert verdict(expect, status(("amqp-outgoing:out", "STOPPED", None))) is None  # waits for the old one
    assert verdict(expect, status(("amqp-outgoing:out", "STARTING", 101))) is None
    assert verdict(expect, status(("amqp-outgoing:out", "RUNNING", 101))) == (
        "server2 runs amqp-outgoing:out with it (pid 101)"
    )


def test_a_rename_is_applied_once_the_old_name_is_gone() -> None:
    expect = Expect("amqp-outgoing:new", active=True, pid_before=100, old="amqp-outgoing:out")
    both = status(("amqp-outgoing:out", "STOPPING", 100), ("amqp-outgoing:new", "RUNNING", 101))
    assert verdict(expect, both) is None
    assert verdict(expect, status(("amqp-outgoing:new", "RUNNING", 101))) is not None


def test_made_inactive_is_applied_once_its_child_is_gone_and_no_holder_is_said() -> None:
    expect = Expect("amqp-channel:in", active=False, pid_before=100)
    assert verdict(expect, status(("amqp-channel:in", "STOPPING", 100))) is None
    assert verdict(expect, status()) == "server2 stopped amqp-channel:in"
    assert verdict(expect, None) is None
    assert seen(expect, None).startswith("no server holds the lease")
