"""`zato start SERVER` returns once the server is a member of its cluster, not only once it
answers: what a user runs next (the LB's start, which compares cluster secrets with the live
servers; `zato cluster status`; a start of the same name elsewhere) sees it live."""

from __future__ import annotations

import dataclasses

import redis

from tests.support import REDIS_URL, free_port, zato
from zato.coord import membership
from zato.coord.signing import member_key
from zato.lifecycle.control import wait_joined


def live_pids(qs, name: str) -> list[int]:
    s = qs.settings(name)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        live = membership.live_servers(client, qs.cluster, member_key(s.cluster_secret, s.cluster))
    finally:
        client.close()
    return [m.pid for m in live if m.name == name]


def test_a_server_is_a_live_member_when_its_start_returns(quickstart):
    qs = quickstart(servers=1, lb=False, workers=2)
    for _ in range(3):  # before, its supervisor's first heartbeat came ~0.2-0.3 s after the return
        said = zato("start", qs.server_dir("server1")).stdout
        assert live_pids(qs, "server1") == [qs.pid("server1")], said
        assert "joined" not in said
        zato("stop", qs.server_dir("server1"))


def test_a_server_not_joined_in_time_is_a_warning_naming_it_not_a_failure(quickstart):
    qs = quickstart(servers=1, lb=False)
    qs.start("server1")
    s, said = qs.settings("server1"), []
    wait_joined(s, qs.pid("server1") + 100_000, said.append, timeout=0.3)  # no member has that pid
    assert said == [
        f"warning: server server1 answers but has not joined cluster {qs.cluster} within 0.3 s: the load"
        " balancer sends it no traffic until it does; its logs/server.log says why"
    ]
    said.clear()
    gone = dataclasses.replace(
        s, redis=dataclasses.replace(s.redis, url=f"redis://127.0.0.1:{free_port()}/0")
    )
    wait_joined(gone, qs.pid("server1"), said.append, timeout=5)
    assert len(said) == 1
    assert said[0].startswith(f"warning: cannot tell whether server server1 joined cluster {qs.cluster}: ")
    assert "127.0.0.1" in said[0]
