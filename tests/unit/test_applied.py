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
    new = status(("amqp-outgoing:out", "RUNNING", 101))
    assert verdict(expect, new) is None  # it has not said it works yet
    assert verdict(expect, new, own("amqp-outgoing:out", 101, "running")) == (
        "server2 runs amqp-outgoing:out with it (pid 101)"
    )


def test_a_new_process_that_cannot_reach_its_broker_is_not_applied() -> None:
    """The edit pointed the connector at a broker it cannot reach: its process RUNS, but it is
    still reconnecting, and --wait says so instead of 'applied'."""
    expect = Expect("amqp-channel:in", active=True, pid_before=100)
    new = status(("amqp-channel:in", "RUNNING", 101))
    cannot = {"amqp-channel:in": {"pid": 101, "state": "reconnecting", "last_error": "connection refused"}}
    assert verdict(expect, new, cannot) is None
    assert seen(expect, new, cannot) == (
        "server2 has amqp-channel:in RUNNING, pid 101, not working: reconnecting: connection refused"
    )
    assert verdict(expect, new, own("amqp-channel:in", 100, "running")) is None  # the old process's
    assert seen(expect, new, own("amqp-channel:in", 100, "running")).endswith("has not said how it works yet")
    blocked = verdict(expect, new, own("amqp-channel:in", 101, "blocked"))  # connected, held back
    assert blocked is not None and "the broker holds its publishes back (a resource alarm)" in blocked
    assert "holds" not in (verdict(expect, new, own("amqp-channel:in", 101, "running")) or "")


def own(name: str, pid: int, state: str) -> dict[str, dict]:
    """The connectors' own statistics (zato.coord.connector_stats) of one connector."""
    return {name: {"pid": pid, "state": state}}


def test_a_rename_is_applied_once_the_old_name_is_gone() -> None:
    expect = Expect("amqp-outgoing:new", active=True, pid_before=100, old="amqp-outgoing:out")
    both = status(("amqp-outgoing:out", "STOPPING", 100), ("amqp-outgoing:new", "RUNNING", 101))
    assert verdict(expect, both) is None
    assert verdict(
        expect, status(("amqp-outgoing:new", "RUNNING", 101)), own("amqp-outgoing:new", 101, "running")
    )


def test_made_inactive_is_applied_once_its_child_is_gone_and_no_holder_is_said() -> None:
    expect = Expect("amqp-channel:in", active=False, pid_before=100)
    assert verdict(expect, status(("amqp-channel:in", "STOPPING", 100))) is None
    assert verdict(expect, status()) == "server2 stopped amqp-channel:in"
    assert verdict(expect, None) is None
    assert seen(expect, None).startswith("no server holds the lease")
