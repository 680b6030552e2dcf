"""Redis loses every member entry at once (what a Sentinel failover to a replica that was
behind looks like: its copies of the entries had expired) while the servers are alive and
serving: the LB keeps them for a grace period instead of draining all of them, and the
servers' heartbeats write their entries again. No request fails; before, every request got a
503 until the next heartbeat (bench/faults redis-failover: 53-72 a round)."""

from __future__ import annotations

import os
import time

import redis

from tests.integration.test_lb_support import Load, states, two_servers, wait_two_up
from tests.support import REDIS_URL, wait_for
from zato.coord.keys import Keys


def test_lost_member_entries_do_not_drain_a_serving_cluster(tmp_path):
    qs = two_servers(tmp_path)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        qs.start()

        wait_two_up(qs)
        keys = [Keys(qs.cluster).member(name) for name in qs.server_names]
        log = os.path.join(qs.lb_dir, "logs", "lb.log")
        with Load(qs.lb_url + "/zato/ping") as load:
            load.wait_requests(200)
            until = time.monotonic() + 1.5  # longer than a heartbeat: the LB sees no member
            while time.monotonic() < until:
                client.delete(*keys)
                time.sleep(0.02)
            wait_for(
                lambda: client.exists(*keys) == 2,
                30,
                what="the servers' heartbeats writing their entries again",
            )
            load.wait_requests(200)
        assert load.failed == []
        assert "membership lists no server while HAProxy has 2 serving" in open(log).read()
        assert set(states(qs)) == {"server1", "server2"}
    finally:
        client.close()
        qs.close()
