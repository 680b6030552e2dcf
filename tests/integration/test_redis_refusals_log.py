"""What a server (its supervisor and workers) and the load balancer say when Redis answers with
an error rather than going away: a read-only replica (READONLY: [kvdb] url names a replica, or a
Sentinel failover is under way), its ACL refusing a command to the user of [kvdb] url (NOPERM),
a key of the cluster holding another type (WRONGTYPE). Each is said in one line per process
with what to do, then at most once a minute with a count (zato.coord.health). Before: a replica
was said as 'Redis unreachable (...)', and NOPERM and WRONGTYPE as 'Redis refused ...' at every
retry (each second or so, for as long as it lasted)."""

from __future__ import annotations

import pathlib
import secrets
import time
from collections import Counter

import redis

from tests.integration.test_redis_outage_log import LINE, by_process
from tests.support import REDIS_URL, master_and_replica, private_redis, wait_for
from zato.coord.keys import Keys


def test_a_server_and_lb_pointed_at_a_replica_say_it_is_a_read_only_replica_once(quickstart, tmp_path):
    with master_and_replica(tmp_path) as (_, port, replica):
        url = f"redis://127.0.0.1:{port}/0"
        qs = quickstart(servers=1, workers=2, extra_conf={"kvdb": {"url": url}, "lb:kvdb": {"url": url}})
        qs.start()
        said = "Redis at " + url + " is a read-only replica ("
        wait_for(lambda: len(by_process(qs.server_logs(), said)) == 3, 60,
                 what="the supervisor's and both workers' line that Redis is a replica")  # fmt: skip
        time.sleep(10)  # the lease check retries each 1.5 s, the heartbeat each second
        log = qs.server_logs()
        # once per process (a line a minute more, "still a read-only replica", on a slow machine)
        replica_lines = [line for line in log.splitlines() if "READONLY" in line and "still a" not in line]
        assert len(replica_lines) == 3 and set(by_process(log, said).values()) == {1}, replica_lines
        assert all(
            said in line and "check [kvdb] url: it must name the master" in line for line in replica_lines
        )
        assert "Redis unreachable (" not in log, log
        lb_log = pathlib.Path(qs.lb_dir, "logs", "lb.log")
        wait_for(
            lambda: "cannot publish the load-balancer view" in lb_log.read_text(), 30, what="the LB's line"
        )
        (lb_line,) = [line for line in lb_log.read_text().splitlines() if "READONLY" in line]
        assert f"Redis at {url}: check [kvdb] url: it must name the master" in lb_line, lb_line
        replica.execute_command("REPLICAOF", "NO", "ONE")  # a failover: it takes writes now
        wait_for(lambda: len(by_process(qs.server_logs(), f"Redis answers again at {url}")) == 3, 60,
                 what="each process's line that Redis answers again")  # fmt: skip


def test_an_acl_user_refused_a_command_is_said_once_with_the_rule_to_add_not_at_every_retry(quickstart):
    """A user whose rules lack +@scripting: the lease's scripts are refused (NOPERM), tried
    again every 1.5 s. Before: 'Redis refused lease check: ...' each time."""
    user, password = f"zato-rediserr-{secrets.token_hex(4)}", secrets.token_hex(16)
    with private_redis() as (port, admin):
        qs = quickstart(servers=1, lb=False, workers=2)
        rules = ["on", f">{password}", *Keys(qs.cluster).acl_rules(), "-@scripting"]
        admin.execute_command("ACL", "SETUSER", user, *rules)
        try:
            url = f"redis://{user}:{password}@127.0.0.1:{port}/0"
            for name in qs.server_names:
                qs._merge(f"{qs.server_dir(name)}/config/server.conf", "kvdb", {"url": url})
            qs.start()
            wait_for(lambda: "NOPERM" in qs.server_logs(), 60, what="the supervisor's line of the refusal")
            time.sleep(10)  # six tries or more of the lease check
            log = qs.server_logs()
            refused = [
                line for line in log.splitlines() if "NOPERM" in line and " still refuses " not in line
            ]
            said = Counter(
                (m.group(1), line.split("(NOPERM: ")[1]) for line in refused if (m := LINE.match(line))
            )
            assert set(said.values()) == {1}, refused  # once per process and refusal
            (lease,) = [line for line in refused if "refused lease check: " in line]
            assert "'evalsha' command); add +evalsha to the ACL rules of [kvdb] url's user" in lease, lease
            assert "said again at most once every 60 s with a count" in lease
            assert password not in log
        finally:
            admin.execute_command("ACL", "DELUSER", user)


def test_an_acl_user_refused_a_command_inside_a_script_is_said_as_noperm(quickstart):
    """A user whose rules lack +publish (docs/redis-acl.md's, pared down): the lease's script
    publishes, and Redis refuses it inside the script in words of its own, no NOPERM and no
    command named. Before: 'refused lease check: acquiring the lease: ResponseError: The user
    executing the script can't run this command ...; a bug, or a key of the cluster written by
    another Redis client (docs/trust.md)'. Now as the ACL refusal it is, with where to read
    the command (redis-cli ACL LOG)."""
    user, password = f"zato-rediserr-{secrets.token_hex(4)}", secrets.token_hex(16)
    with private_redis() as (port, admin):
        qs = quickstart(servers=1, lb=False, workers=1)
        rules = ["on", f">{password}", *Keys(qs.cluster).acl_rules(), "-publish"]
        admin.execute_command("ACL", "SETUSER", user, *rules)
        try:
            url = f"redis://{user}:{password}@127.0.0.1:{port}/0"
            qs._merge(f"{qs.server_dir('server1')}/config/server.conf", "kvdb", {"url": url})
            qs.start()
            wait_for(lambda: "refused lease check: " in qs.server_logs(), 60, what="the lease check's line")
            (lease,) = [line for line in qs.server_logs().splitlines() if "refused lease check: " in line]
            assert (
                "acquiring the lease: Redis's ACL refuses it to the user of [kvdb] url (NOPERM: a script's"
                " command: this user can't run this command or subcommand); add the command `redis-cli"
                " ACL LOG 1` names to the ACL rules of [kvdb] url's user" in lease
            ), lease
            assert "a bug" not in lease
        finally:
            admin.execute_command("ACL", "DELUSER", user)


def test_a_key_of_another_type_is_said_once_naming_it_not_at_every_heartbeat(quickstart):
    """The server's own member key replaced by a hash (another Redis client's): each heartbeat
    (every second) fails on it. Before: 'Redis refused membership heartbeat: ... WRONGTYPE ...'
    each second, naming no key."""
    qs = quickstart(servers=1, lb=False, workers=1)
    qs.start()
    member = Keys(qs.cluster).member("server1")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        wait_for(lambda: client.exists(member), 30, what="server1's member key")
        with client.pipeline() as pipe:
            pipe.delete(member).hset(member, "written-by", "another client").execute()
        wait_for(lambda: "WRONGTYPE" in qs.server_logs(), 30, what="the supervisor's line of the refusal")
        time.sleep(8)  # eight heartbeats or more
        log = qs.server_logs()
        refused = [line for line in log.splitlines() if "WRONGTYPE" in line and " still refuses " not in line]
        assert len(refused) == 1, refused
        assert "refused membership heartbeat: " in refused[0], refused[0]
        assert f"redis-cli DEL {member}" in refused[0], refused[0]
        client.delete(member)  # mended: the next heartbeat writes it again
        wait_for(
            lambda: client.type(member) in (b"string", "string"), 30, what="the heartbeat writing it again"
        )
    finally:
        client.close()
