"""The LB controller reads membership through the coordination port: here the in-memory twin
(zato.coord.memory_cluster), no Redis and no HAProxy (neither is touched by what is tested)."""

from __future__ import annotations

import logging

from zato.config.settings import LBSettings, RedisSettings
from zato.coord.membership import Member
from zato.coord.memory import MemoryCoord
from zato.coord.memory_cluster import MemoryCluster, MemoryMembership
from zato.coord.signing import member_key
from zato.lb.controller import Controller

SECRET = "a-cluster-secret-of-some-length"
SETTINGS = LBSettings(
    "/lb", "c1", "127.0.0.1", 11223, RedisSettings(), "admin", "stats-pw", cluster_secret=SECRET
)


def world():
    now = [1000.0]
    store = MemoryCluster(name="c1", coord=MemoryCoord(clock=lambda: now[0]), wall=lambda: now[0])
    key = member_key(SECRET, "c1")
    lb = Controller(SETTINGS, "haproxy", membership=MemoryMembership(store, key, server="lb"))
    return now, store, key, lb


def test_the_controller_wants_the_live_members_and_drains_an_operators_hold():
    now, store, key, lb = world()
    for i, name in enumerate(("server1", "server2")):
        MemoryMembership(store, key, server=name).announce(
            Member(name, "127.0.0.1", 17010 + i, 100 + i, 0.0), 2.0
        )
    MemoryMembership(store, key).set_operator_drain("server2", True)
    members = lb._members()
    assert [(m.name, m.state) for m in members] == [("server1", "running"), ("server2", "draining")]
    assert [b.address for b in lb._desired_backends()] == ["127.0.0.1:17010", "127.0.0.1:17011"]
    now[0] += 2.5  # no heartbeat: the entries' TTL is over, both are gone from what is wanted
    assert lb._members() == []


def test_a_forged_entry_is_not_wanted():
    _, store, key, lb = world()
    MemoryMembership(store, member_key("another-secret-entirely", "c1"), server="x").announce(
        Member("intruder", "10.0.0.9", 17010, 1, 0.0), 2.0
    )
    assert lb._members() == []


def test_membership_unreadable_keeps_the_servers_and_says_so_once(caplog):
    _, store, key, lb = world()
    store.coord.partition("lb")
    with caplog.at_level(logging.WARNING, logger="zato.lb.controller"):
        assert lb._members() is None
        assert lb._members() is None
    warned = [
        r for r in caplog.records if "cannot read membership, keeping the current servers" in r.getMessage()
    ]
    assert len(warned) == 1
    store.coord.partition("lb", cut=False)
    assert lb._members() == []


class BrokenMembership(MemoryMembership):
    def live_servers(self):  # noqa: ANN201
        raise KeyError("a bug in reading the members")


def test_a_bug_in_reconciling_is_logged_once_and_the_controller_goes_on(caplog):
    """An exception reconcile() did not expect (before: it ended the controller, and HAProxy
    with it) is logged with its traceback once while it lasts; the loop goes on."""
    _, store, key, lb = world()
    lb.membership = BrokenMembership(store, key, server="lb")
    with caplog.at_level(logging.ERROR, logger="zato.lb.controller"):
        for _ in range(3):
            lb._reconcile_safely()
    said = [r for r in caplog.records if "HAProxy keeps the servers it has" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is not None
    assert "KeyError" in said[0].getMessage()
