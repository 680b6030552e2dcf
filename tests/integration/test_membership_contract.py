"""One contract for the membership side of the coordination port, run on both implementations:
`RedisMembership` over the shared Redis and `MemoryMembership` over `MemoryCluster` (fake
clock). What the LB, the connectors and `zato start` rely on: a server that stops refreshing
disappears after its TTL, a graceful leave removes it at once, and only entries signed with
the cluster's secret, fresh and unaltered, count as members."""

from __future__ import annotations

import json
import threading

import pytest

from tests.integration.cluster_worlds import RedisClusterWorld, open_world
from tests.support import wait_for
from zato.common.errors import CoordDataError, CoordError, CoordUnavailable
from zato.coord.keys import Keys
from zato.coord.membership import Member, entry
from zato.coord.signing import member_key

TTL = 0.3


@pytest.fixture(params=["redis", "memory"])
def world(request):
    yield from open_world(request.param)


def member(name: str, port: int, pid: int = 4242) -> Member:
    return Member(name, "127.0.0.1", port, pid, 1.7e9, role="standby")


def names(m) -> list[str]:
    return [x.name for x in m.live_servers()]


def test_a_server_joins_with_a_heartbeat_and_leaves_at_once(world):
    m = world.membership()
    s1 = member("server1", 17010)
    assert m.refresh(s1, TTL) is True  # not there before: the caller announces
    m.announce(s1, TTL)
    assert m.refresh(s1, TTL) is False  # a plain heartbeat
    live = [(x.name, x.address, x.role) for x in m.live_servers()]
    assert live == [("server1", "127.0.0.1:17010", "standby")]
    assert m.withdraw("server1") is True
    assert m.live_servers() == []


def test_a_refresh_that_rejoined_is_listed_once_indexed(world):
    """The supervisor's heartbeat: refresh, and index the name when it rejoined (a reader that
    saw the entry expire took it out of the index)."""
    m = world.membership()
    assert m.refresh(member("server1", 17010), 30) is True
    assert names(m) == []  # written, not yet in the index readers go by
    m.index("server1")
    assert names(m) == ["server1"]
    m.index("server1")  # now and then, whether needed or not
    assert names(m) == ["server1"]


def test_a_server_that_stops_refreshing_disappears_after_its_ttl(world):
    m = world.membership()
    m.announce(member("server1", 17010), 30)
    m.announce(member("server2", 17011), TTL)
    assert names(m) == ["server1", "server2"]
    world.outlive(TTL, lambda: names(m) == ["server1"])
    assert m.refresh(member("server2", 17011), TTL) is True  # coming back is a (re)join


def test_only_entries_signed_with_this_clusters_secret_count(world):
    m = world.membership()
    m.announce(member("server1", 17010), 30)
    genuine = json.loads(entry(member("server2", 17011), world.key, 30, at=world.wall()))
    tampered = {**genuine, "port": 17099}  # redirect the LB to another address
    world.write_member_entry("server2", json.dumps(tampered), 30)
    other_secret = member_key("another secret", "x")
    foreign = entry(member("server3", 17012), other_secret, 30, at=world.wall())
    world.write_member_entry("server3", foreign, 30)
    copied = entry(member("server1", 17010), world.key, 30, at=world.wall())
    world.write_member_entry("server4", copied, 30)  # a real entry under another name
    assert names(m) == ["server1"]
    assert names(world.membership(key=other_secret)) == ["server3"]


def test_a_replayed_old_entry_is_refused(world):
    m = world.membership()
    old = entry(member("server1", 17010), world.key, 5, at=world.wall() - 3600)
    world.write_member_entry("server1", old, 30)
    assert m.live_servers() == []
    world.write_member_entry("server1", entry(member("server1", 17010), world.key, 5, at=world.wall()), 30)
    assert names(m) == ["server1"]


def test_a_server_withdraws_only_its_own_entry(world):
    m = world.membership()
    real = member("server1", 17010)
    m.announce(real, 30)
    impostor = member("server1", 17099, pid=999)  # same name, another process
    assert m.withdraw("server1", owner=impostor) is False
    assert [x.port for x in m.live_servers()] == [17010]
    assert m.withdraw("server1", owner=real) is True
    assert m.live_servers() == []
    assert m.withdraw("server1", owner=real) is True  # already gone: nothing to refuse


def test_a_name_taken_by_another_live_server_is_refused(world):
    m = world.membership()
    m.announce(member("server1", 17010), 30)
    m.check_name_free("server1", "127.0.0.1:17010")  # the same server restarted: fine
    m.check_name_free("server2", "127.0.0.1:17011")
    with pytest.raises(CoordError, match="taken by the live server at 127.0.0.1:17010"):
        m.check_name_free("server1", "127.0.0.1:17011")


def test_watchers_hear_joins_leaves_and_operator_drains(world):
    m = world.membership()
    heard: list[dict] = []
    subscribed, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=m.watch, args=(heard.append, stop.is_set, subscribed.set, 0.05))
    watcher.start()
    try:
        assert subscribed.wait(10)
        m.publish_change("server1", "joined")
        m.set_operator_drain("server1", True)
        assert m.operator_drained() == {"server1"}
        m.set_operator_drain("server1", False)
        m.publish_change("server1", "left")
        wait_for(lambda: len(heard) == 4, timeout=10, what="four change notices")
    finally:
        stop.set()
        watcher.join(10)
    assert m.operator_drained() == set()
    assert [(n["name"], n["event"]) for n in heard] == [
        ("server1", "joined"),
        ("server1", "draining"),
        ("server1", "joined"),
        ("server1", "left"),
    ]


def test_a_display_without_the_secret_cannot_announce(world):
    m = world.membership(key=None)
    with pytest.raises(CoordError, match="cluster secret"):
        m.announce(member("server1", 17010), 30)


def test_a_server_that_cannot_reach_the_store_gets_coord_unavailable(world):
    m = world.membership(cut_off=True)
    with pytest.raises(CoordUnavailable):
        m.refresh(member("server1", 17010), 30)
    with pytest.raises(CoordUnavailable):
        m.live_servers()
    with pytest.raises(CoordUnavailable):
        m.withdraw("server1")


def test_redis_holding_the_wrong_type_is_a_data_error_not_an_outage():
    """A key of the wrong type (WRONGTYPE) is a bug to fix, not "Redis unreachable"."""
    world = RedisClusterWorld()
    try:
        keys, m = Keys(world.cluster), world.membership()
        world.client.lpush(keys.member("server1"), "x")
        with pytest.raises(CoordDataError, match="WRONGTYPE"):
            m.refresh(member("server1", 17010), 30)
        with pytest.raises(CoordDataError):
            m.withdraw("server1", owner=member("server1", 17010))
        world.client.set(keys.members, "not a set")
        with pytest.raises(CoordDataError, match="WRONGTYPE"):
            m.live_servers()
    finally:
        world.close()
