"""A cluster whose Redis has no default user: servers, LB and CLI log in with the cluster's
own ACL user, restricted to the cluster's keys and channels (docs/redis-acl.md), and `zato
start` does not warn (it does for a Redis that takes anonymous commands: test_trust_redis)."""

from __future__ import annotations

import os
import time

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
    status = zato("cluster", "status", qs.path, "--json", check=False).stdout
    assert '"holder": "server1"' in status
    # The same user cannot touch another cluster's keys.
    other = redis.Redis(port=port, username=USER, password=PASSWORD)
    with pytest.raises(redis.exceptions.NoPermissionError):
        other.set("zato:another-cluster:member:x", "forged")
    other.close()


def test_a_user_made_before_time_was_in_the_rules_still_heartbeats_on_this_hosts_clock(acl_redis, caplog):
    """A user made from docs/redis-acl.md before `+time` was added: Redis refuses TIME to it
    (NOPERM). Membership goes on with this host's clock, said once, instead of every heartbeat
    failing."""
    from zato.coord import membership, redis_clock
    from zato.coord.signing import member_key

    port, admin = acl_redis
    cluster = cluster_name("acl")
    old_rules = [r for r in Keys(cluster).acl_rules() if r != "+time"]
    admin.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", *old_rules)
    client = redis.Redis(port=port, username=USER, password=PASSWORD)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.time()
    key = member_key("a secret", cluster)
    me = membership.Member("server1", "127.0.0.1", 17010, 4242, 0.0)
    with caplog.at_level("WARNING", logger=redis_clock.__name__):
        membership.announce(client, cluster, me, 10, key)
        for _ in range(3):
            membership.refresh(client, cluster, me, 10, key)
            assert [m.name for m in membership.live_servers(client, cluster, key)] == ["server1"]
    refused = [r for r in caplog.records if "Redis refuses TIME to this user" in r.getMessage()]
    assert len(refused) == 1 and "add +time to the user's ACL rules" in refused[0].getMessage()
    client.close()


def test_start_says_it_is_the_default_user_that_takes_commands_without_a_password(acl_redis, quickstart):
    """[kvdb] url with the cluster's own ACL user, and Redis's default user left on (as
    docs/redis-acl.md's first command alone leaves it). Before, `zato start` said 'warning: Redis
    at redis://zato-acl-test:******@... takes commands without a password', as if the password
    in the URL were not used; now it names the default user and how to close it."""
    port, admin = acl_redis
    cluster = cluster_name("acl")
    rules = ["on", f">{PASSWORD}", *Keys(cluster).acl_rules()]
    admin.execute_command("ACL", "SETUSER", USER, *rules)
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0"
    qs = quickstart(servers=1, cluster=cluster, lb=False, extra_conf={"kvdb": {"url": url}})
    out = zato("start", qs.server_dir("server1"))
    said = [line for line in (out.stdout + out.stderr).splitlines() if "without a password" in line]
    assert len(said) == 1, out.stdout + out.stderr
    assert "also takes commands without a password, as its default user" in said[0]
    assert "ACL SETUSER default off" in said[0] and PASSWORD not in said[0]


def test_a_default_user_turned_off_under_a_running_server_is_one_outage_per_process(acl_redis, quickstart):
    """docs/redis-acl.md's step done out of order: the default user turned off while the server
    still logs in as it. Connections made before keep working, new ones are refused, so each
    process met a refusal, then an answer, then a refusal... Before, each turn was said: the
    outage in full and 'answers again', a pair every second or two in every process. Now each
    process says the outage, and when it fails again soon after answering, that it fails and
    answers in turn: at most one 'answers again' in the first minute."""
    port, admin = acl_redis
    url = f"redis://127.0.0.1:{port}/0"
    qs = quickstart(servers=1, lb=False, extra_conf={"kvdb": {"url": url}})
    qs.start()
    log = os.path.join(qs.server_dir("server1"), "logs", "server.log")
    begin = os.path.getsize(log)
    admin.execute_command("ACL", "SETUSER", "default", "off")  # admin's own connection stays in
    admin.client_kill_filter(_type="pubsub")  # the workers' subscriptions: made again, refused
    # a process fails again soon after it answered: it says so, once (before: never; an outage
    # in full and 'answers again' at every turn)
    turns = "it fails and answers in turn"
    wait_for(
        lambda: turns in read_from(log, begin), 30, what="a process saying Redis fails and answers in turn"
    )
    time.sleep(6)  # more turns of refusals and answers (before: a pair every 1.5 s in each process)
    said = read_from(log, begin).splitlines()
    again: dict[str, int] = {}
    for line in said:
        if "Redis answers again" in line:
            pid = line.split()[3]
            again[pid] = again.get(pid, 0) + 1
    assert max(again.values(), default=0) <= 1, "\n".join(line for line in said if "zato.redis" in line)


def read_from(path: str, offset: int) -> str:
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read()
