"""A cluster whose Redis has no default user: servers, LB and CLI log in with the cluster's
own ACL user, restricted to the cluster's keys and channels (docs/redis-acl.md), and `zato
start` does not warn (it does for a Redis that takes anonymous commands: test_trust_redis)."""

from __future__ import annotations

import pytest
import redis
import requests

from tests.support import cluster_name, private_redis, wait_for, zato
from zato.coord.keys import Keys
from zato.lb.status import describe

USER, PASSWORD = "zato-acl-test", "a-long-redis-password-for-the-test"


@pytest.fixture
def acl_redis():
    with private_redis() as (port, admin):
        yield port, admin


def test_a_cluster_runs_with_its_own_acl_user_and_no_default_user(acl_redis, quickstart):
    port, admin = acl_redis
    cluster = cluster_name("acl")
    rules = ["on", f">{PASSWORD}", *Keys(cluster).acl_rules()]
    assert admin.execute_command("ACL", "SETUSER", USER, *rules) in (b"OK", "OK", True)
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
    admin.execute_command("ACL", "SETUSER", "default", "off")  # nobody gets in without a password
    qs = quickstart(servers=1, cluster=cluster, extra_conf={"kvdb": {"url": url}, "lb:kvdb": {"url": url}})
    out = zato("start", qs.server_dir("server1"))
    assert "without a password" not in out.stdout + out.stderr
    qs.start("load-balancer")
    wait_for(lambda: [s["state"] for s in describe(qs.lb_dir)["servers"]] == ["UP"], 30, what="server1 UP")
    assert requests.get(qs.lb_url + "/zato/ping", timeout=5).json()["zato_ping_response"] == {"pong": "zato"}
    status = zato("cluster", "status", qs.path, "--json").stdout
    assert '"holder": "server1"' in status
    # The same user cannot touch another cluster's keys.
    other = redis.Redis(port=port, username=USER, password=PASSWORD)
    with pytest.raises(redis.exceptions.NoPermissionError):
        other.set("zato:another-cluster:member:x", "forged")
    other.close()
