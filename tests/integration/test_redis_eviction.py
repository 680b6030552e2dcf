"""A Redis that may evict keys (a maxmemory and a maxmemory-policy other than noeviction) drops
queued messages, the lease and its epoch, member entries and internal-call nonces without an
error. Before, nothing said so: `zato start`, server.log and `zato cluster status` were silent.
Now each says it once, naming the policy, what may go and the fix; a policy this user may not
read (the cluster's ACL user: -@dangerous) is said to be unchecked, with how to check it by
hand, and the server starts all the same. Each test runs a redis-server of its own."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.test_dashboard import Operator
from tests.integration.test_sentinel import MASTER
from tests.support import cluster_name, private_redis, wait_for, zato
from zato.config.settings import RedisSettings
from zato.coord.client import describe
from zato.coord.keys import Keys

USER, PASSWORD = "zato-evict-test", "a-long-redis-password-for-the-eviction-test"
EVICTS = "has maxmemory-policy allkeys-lru with maxmemory 50mb"
UNCHECKED = "could not check the maxmemory-policy of Redis at"


@pytest.fixture
def own_redis():
    with private_redis() as (port, admin):
        admin.config_set("maxmemory", "50mb")
        yield port, admin


def status(qs) -> tuple[int, str, dict]:  # noqa: ANN001 - a Quickstart
    where = qs.server_dir("server1")  # not the quickstart's: its load balancer is not started
    text = zato("cluster", "status", where, check=False)
    doc = json.loads(zato("cluster", "status", where, "--json", check=False).stdout)
    return text.returncode, text.stdout, doc


def lines(text: str, fragment: str) -> list[str]:
    return [line for line in text.splitlines() if fragment in line]


def test_a_redis_that_evicts_is_said_at_start_in_server_log_and_in_the_status(own_redis, quickstart):
    port, admin = own_redis
    admin.config_set("maxmemory-policy", "noeviction")  # at its maxmemory, it refuses writes: nothing said
    url = f"redis://127.0.0.1:{port}/0"
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("evict"), extra_conf={"kvdb": {"url": url}})
    qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), "kvdb", {"url": url})
    out = qs.start()
    assert "maxmemory-policy" not in out + qs.server_logs(), out
    code, text, _ = status(qs)
    assert code == 0 and "maxmemory-policy" not in text, text

    admin.config_set("maxmemory-policy", "allkeys-lru")
    code, text, doc = status(qs)
    where = describe(qs.settings("server1").redis)
    said = lines(text, EVICTS)
    assert code == 3 and len(said) == 1, text  # exit 3: read, and something is wrong
    assert said[0].startswith(f"problem: Redis at {where} {EVICTS}: at its maxmemory it evicts any key"), said
    assert "messages waiting to go out" in said[0] and "set maxmemory-policy noeviction" in said[0]
    assert doc["redis_eviction"]["policy"] == "allkeys-lru" and doc["redis_eviction"]["maxmemory"] == 50 << 20
    qs.start("dashboard")  # its error bar says it too
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    wait_for(lambda: lines(" | ".join(op.state()["errors"]), EVICTS), 20, what="the dashboard's line")
    assert lines(" | ".join(op.state()["errors"]), f"Redis at {where} {EVICTS}: at its maxmemory")

    qs.stop("server1")
    out = qs.start()
    said = lines(out, EVICTS)
    assert len(said) == 1 and said[0].startswith(f"warning: Redis at {where} {EVICTS}"), out
    logged = lines(qs.server_logs(), EVICTS)  # once, from the arbiter, not from each worker
    assert len(logged) == 1 and "WARNING" in logged[0] and "noeviction" in logged[0], logged

    admin.config_set("maxmemory-policy", "volatile-ttl")  # only keys with a TTL: the lease, entries, nonces
    code, text, _ = status(qs)
    said = lines(text, "has maxmemory-policy volatile-ttl")
    assert code == 3 and len(said) == 1 and "evicts keys that carry a TTL" in said[0], text
    assert "internal-call nonces" in said[0] and "the connector-server lease" in said[0], said
    admin.config_set("maxmemory-policy", "noeviction")  # mended: the dashboard's line goes
    wait_for(lambda: not lines(" | ".join(op.state()["errors"]), "maxmemory-policy"), 20, what="no line")


def test_the_acl_users_own_rules_read_the_policy(own_redis, quickstart):
    """The cluster's own ACL user (docs/redis-acl.md: -@dangerous takes CONFIG away, +info gives
    INFO back) sees an evicting policy: the warning, not "could not check" at every start."""
    port, admin = own_redis
    admin.config_set("maxmemory-policy", "allkeys-lru")
    cluster = cluster_name("evict")
    admin.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", *Keys(cluster).acl_rules())
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
    qs = quickstart(servers=1, lb=False, cluster=cluster, extra_conf={"kvdb": {"url": url}})
    out = qs.start()
    assert not lines(out, UNCHECKED), out
    said = lines(out, "has maxmemory-policy allkeys-lru")
    assert len(said) == 1 and said[0].startswith("warning: ") and PASSWORD not in out, out
    code, text, doc = status(qs)
    assert code == 3 and doc["redis_eviction"]["policy"] == "allkeys-lru", text


def test_a_policy_the_acl_user_may_not_read_is_said_unchecked_and_the_server_starts(own_redis, quickstart):
    """An ACL user made from docs/redis-acl.md before +info was in it: -@dangerous takes
    CONFIG and INFO away."""
    port, admin = own_redis
    admin.config_set("maxmemory-policy", "allkeys-lru")  # what it cannot see
    cluster = cluster_name("evict")
    old_rules = [r for r in Keys(cluster).acl_rules() if r != "+info"]
    admin.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", *old_rules)
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
    qs = quickstart(servers=1, lb=False, cluster=cluster, extra_conf={"kvdb": {"url": url}})
    out = qs.start()
    where = describe(qs.settings("server1").redis)
    said = lines(out, UNCHECKED)
    assert len(said) == 1 and said[0].startswith(f"warning: {UNCHECKED} {where} (NOPERM"), out
    assert "redis-cli CONFIG GET maxmemory-policy must say noeviction" in said[0] and PASSWORD not in out
    assert "server server1 started" in out, out
    logged = lines(qs.server_logs(), UNCHECKED)
    assert len(logged) == 1 and "WARNING" in logged[0], logged
    code, text, doc = status(qs)
    assert code == 0 and len(lines(text, f"warning: {UNCHECKED}")) == 1, text  # not a problem: unknown
    assert doc["redis_eviction"]["policy"] is None and "NOPERM" in doc["redis_eviction"]["unread"]


def test_behind_sentinel_the_master_is_checked(redis_group):
    """The master the Sentinels give is the one whose policy counts (a replica does not evict
    by itself: it deletes what its master evicts)."""
    from zato.server.prechecks import eviction_line

    group = redis_group
    settings = RedisSettings(
        url="redis://127.0.0.1:1/0",  # its host is not used behind Sentinel
        sentinels=(("127.0.0.1", group.sentinel_port),),
        sentinel_master=MASTER,
    )
    master, replica = group.client(group.master_port), group.client(group.replica_port)
    for one, policy in ((master, "noeviction"), (replica, "allkeys-lru")):
        one.config_set("maxmemory", "50mb")
        one.config_set("maxmemory-policy", policy)
    assert eviction_line(settings) == ""
    master.config_set("maxmemory-policy", "volatile-lru")
    replica.config_set("maxmemory-policy", "noeviction")
    said = eviction_line(settings)
    assert said.startswith(
        f"Redis at sentinel 127.0.0.1:{group.sentinel_port} master {MASTER} has maxmemory-policy volatile-lru"
    ), said
    master.close()
    replica.close()
