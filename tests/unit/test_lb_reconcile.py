"""The LB controller's reconcile, as pure decisions: desired server + HAProxy's actual state
-> Runtime API commands (zato.lb.reconcile). No HAProxy, no sockets, no clock."""

from __future__ import annotations

from zato.lb.reconcile import (
    DRAIN_GRACE,
    EMPTY_GRACE,
    HUNG_AFTER,
    for_hung,
    for_leaver,
    for_member,
    keep_when_empty,
)
from zato.lb.render import Backend
from zato.lb.runtime import ServerState

B = Backend("server1", "127.0.0.1", 17010)


def state(address: str = "127.0.0.1:17010", admin: str = "ready", sessions: int = 0) -> ServerState:
    return ServerState("server1", address, "UP", sessions, "L7OK", admin)


def ops(cmds) -> list[tuple[str, str]]:
    return [(c.op, c.state) for c in cmds]


def test_a_new_member_is_added_and_a_draining_one_drained_at_once():
    assert ops(for_member(B, "running", None)) == [("add", "")]
    assert ops(for_member(B, "draining", None)) == [("add", ""), ("set_state", "drain")]
    assert for_member(B, "running", None)[0].backend == B


def test_a_member_in_place_needs_nothing_and_a_moved_or_draining_one_is_changed():
    assert for_member(B, "running", state()) == []
    moved = for_member(B, "draining", state(address="127.0.0.1:9"))
    assert ops(moved) == [("set_addr", ""), ("set_state", "drain")]
    assert "moved from 127.0.0.1:9 to 127.0.0.1:17010" in moved[0].log
    assert ops(for_member(B, "running", state(admin="drain"))) == [("set_state", "ready")]


def test_a_member_whose_checks_are_off_gets_them_turned_on_after_its_state():
    """A dynamic server starts with its checks off: a controller cut short after `add server`
    left it so (tests/ha/test_lb_faults.py has it against a real HAProxy)."""
    half_added = ServerState("server1", "127.0.0.1:17010", "MAINT", 0, "", "maint")
    assert ops(for_member(B, "running", half_added)) == [("set_state", "ready"), ("enable_health", "")]
    unchecked = ServerState("server1", "127.0.0.1:17010", "no check", 0, "")
    assert ops(for_member(B, "running", unchecked)) == [("enable_health", "")]
    first_check_to_come = ServerState("server1", "127.0.0.1:17010", "UP", 0, "* INI")
    assert for_member(B, "running", first_check_to_come) == []


def test_a_leaver_is_drained_then_removed_once_idle():
    assert ops(for_leaver(state(), 100.0, 100.0)) == [("set_state", "drain")]
    assert for_leaver(state(admin="drain", sessions=3), 100.0, 101.0) == []  # requests in flight finish
    assert ops(for_leaver(state(admin="drain"), 100.0, 101.0)) == [("set_state", "maint"), ("del", "")]


def test_a_leaver_still_busy_after_the_grace_has_its_sessions_shut():
    cmds = for_leaver(state(admin="drain", sessions=3), 100.0, 100.0 + DRAIN_GRACE + 0.1)
    assert ops(cmds) == [("set_state", "maint"), ("shutdown_sessions", ""), ("del", "")]
    assert cmds[1].warn and "3 sessions" in cmds[1].log


def test_a_member_down_with_requests_on_it_has_them_shut_only_once_it_looks_hung():
    down = ServerState("server1", "127.0.0.1:17010", "DOWN", 2, "L4TOUT")
    assert for_hung(down, 100.0, 100.0 + HUNG_AFTER - 0.1) == []  # a vanished host ends them itself
    cmds = for_hung(down, 100.0, 100.0 + HUNG_AFTER)
    assert ops(cmds) == [("shutdown_sessions", "")] and cmds[0].warn and "2 requests" in cmds[0].log
    idle = ServerState("server1", "127.0.0.1:17010", "DOWN", 0, "L4TOUT")
    assert for_hung(idle, 100.0, 200.0) == []
    slow_but_live = ServerState("server1", "127.0.0.1:17010", "UP", 5, "L7OK")
    assert for_hung(slow_but_live, 100.0, 200.0) == []
    # a graceful stop: it answers its checks 503 while its requests finish (before: shut at 5 s)
    draining = ServerState("server1", "127.0.0.1:17010", "DOWN", 2, "L7STS", admin_state="drain")
    assert for_hung(draining, 100.0, 200.0) == []
    closed = ServerState("server1", "127.0.0.1:17010", "DOWN", 2, "L4CON", admin_state="drain")
    assert for_hung(closed, 100.0, 200.0) == []  # then gunicorn closed its listener to stop
    checking = ServerState("server1", "127.0.0.1:17010", "DOWN", 2, "* L7TOUT")  # a check under way
    assert ops(for_hung(checking, 100.0, 200.0)) == [("shutdown_sessions", "")]


def test_membership_that_lost_every_entry_is_not_followed_for_a_grace_period():
    ready = {"server1": ServerState("server1", "127.0.0.1:17010", "UP", 0, "L7OK")}
    assert keep_when_empty(0, ready, 100.0, 100.0 + EMPTY_GRACE - 0.1)  # entries come back in a heartbeat
    assert not keep_when_empty(0, ready, 100.0, 100.0 + EMPTY_GRACE)  # gone for good: follow membership
    assert not keep_when_empty(1, ready, 100.0, 100.0)
    drained = {"server1": ServerState("server1", "127.0.0.1:17010", "UP", 0, "L7OK", "drain")}
    assert not keep_when_empty(0, drained, 100.0, 100.0)  # the last server left, saying so first
    dead = {"server1": ServerState("server1", "127.0.0.1:17010", "DOWN", 0, "L4CON")}
    assert not keep_when_empty(0, dead, 100.0, 100.0)
