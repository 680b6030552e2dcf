"""`zato cluster status` against the real Redis, with supervisors as real processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable

import redis

from tests.ha.supervised import SupervisedCluster, write_server_dir
from tests.support import cluster_name, process_table, wait_for, zato
from zato.coord import membership
from zato.coord.signing import member_key


def test_status_shows_live_and_gone_servers_the_holder_and_no_secret() -> None:
    c = SupervisedCluster(size=2)
    try:
        c.start("server1")
        wait_for(lambda: c.holder() and c.holder()["server"] == "server1", what="server1 to hold the lease")

        def both_listed() -> dict | None:
            data = json.loads(zato("cluster", "status", c.dirs["server1"], "--json", check=False).stdout)
            return data if data["servers"] and data["servers"][0]["live"] else None

        data = wait_for(both_listed, timeout=20, what="server1 live in the status")
        assert data["lease"]["holder"] == "server1" and data["lease"]["epoch"] == 1
        assert [s["role"] for s in data["servers"]] == ["holder"]
        table = zato("cluster", "status", c.dirs["server1"], check=False).stdout
        assert "server1  live" in table and "Lease: held by server1, epoch 1" in table
        assert "s3cret-value" not in table and "admin-pw-123" not in table
        c.stop("server1")
        table = wait_for(
            lambda: (
                (t := zato("cluster", "status", c.dirs["server1"], check=False).stdout)
                and "server1  gone" in t
                and t
            ),
            timeout=20,
            what="server1 to show as gone",
        )
        assert "Lease: not held (newest epoch 1)" in table
    finally:
        c.close()


def test_status_with_redis_unreachable_says_so_in_one_line(tmp_path) -> None:
    path = write_server_dir(str(tmp_path), "server1", cluster_name(), 17010, "redis://127.0.0.1:1/0", {})
    proc = zato("cluster", "status", path, check=False)
    assert proc.returncode == 1  # the cluster could not be read
    out = proc.stdout
    assert "Lease: unknown (Redis unreachable: see below)" in out
    assert "warning: Redis: membership read: ConnectionError" in out
    # what to do, as the servers' own logs say (before: the error alone)
    assert "; is Redis running there, and reachable from this host? ([kvdb] url says where)" in out, out
    assert "Traceback" not in out


def test_status_of_a_folder_that_is_not_a_component_is_a_one_line_error(tmp_path) -> None:
    proc = zato("cluster", "status", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"zato: error: {tmp_path}: not a Zato component directory (no .zato file)"


def test_status_exit_code_says_whether_the_cluster_is_well(quickstart) -> None:
    """0 all well, 1 Redis cannot be read, 3 read but something is wrong (said on problem: lines)."""
    qs = quickstart(servers=1)

    def status() -> tuple[int, list[str]]:
        proc = zato("cluster", "status", qs.path, check=False)
        return proc.returncode, [line for line in proc.stdout.splitlines() if line.startswith("problem: ")]

    assert status() == (
        3,
        ["problem: no live server", f"problem: load balancer {qs.lb_dir}: not running"],
    )
    qs.start()
    wait_for(lambda: status() == (0, []), 30, what="exit 0 with the server and the LB running")

    # The workers hang while the supervisor renews the membership: the server is live, and
    # HAProxy (its checks time out) sends it nothing. Before, exit 0 with no problem line, also
    # from the server's folder (any host: what the LB reports in Redis).
    lb_id = f"{socket.gethostname()}:{qs.lb_port}"
    down = f"problem: server server1 is live but load balancer {lb_id} marks it DOWN (last check L7TOUT)"

    def server_status() -> tuple[int, list[str]]:
        proc = zato("cluster", "status", qs.server_dir("server1"), check=False)
        return proc.returncode, [line for line in proc.stdout.splitlines() if line.startswith("problem: ")]

    _stopped_until(_children(qs.pid("server1"), b"worker"), (status, down), (server_status, down))
    wait_for(lambda: status() == (0, []), 30, what="exit 0 once the workers answer again")
    # HAProxy hung (its runtime socket does not answer): before, "Load balancer: URL (running)",
    # an empty backend table and exit 0, as if it had no server
    with open(os.path.join(qs.lb_dir, "work", "haproxy.pid")) as f:
        master = int(f.read().strip())
    hung = f"problem: load balancer {qs.lb_dir}: HAProxy does not answer: HAProxy Runtime API at "
    _stopped_until(_children(master, b""), (status, hung))
    wait_for(lambda: status() == (0, []), 30, what="exit 0 once HAProxy answers again")
    # A server that announces a host the LB's host cannot resolve (a wrong --announce-host): live,
    # and never in HAProxy. Before, exit 0 and lb.log alone said it.
    client = redis.Redis.from_url(qs.settings("server1").redis.url)
    try:
        member = membership.Member("server9", "nosuchhost.invalid", 17099, os.getpid(), time.time())
        membership.announce(client, qs.cluster, member, 30, member_key(qs.cluster_secret, qs.cluster))
        unresolved = (
            f"problem: server server9 is live but load balancer {lb_id} marks it unresolved (its host"
            " nosuchhost.invalid does not resolve there): it sends it no requests"
        )
        wait_for(lambda: status() == (3, [unresolved]), 20, interval=0.5, what=unresolved)
    finally:
        membership.withdraw(client, qs.cluster, "server9")  # gone at once: the next status has it not
        client.close()

    qs.stop("load-balancer")
    assert status() == (3, [f"problem: load balancer {qs.lb_dir}: not running"])

    qs.stop("server1")
    zato("conn", "create", "amqp-def", qs.path, "--name", "local", "--host", "127.0.0.1", "--port", "5672",
         "--username", "guest", "--password", "guest")  # fmt: skip
    zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out1", "--def", "local",
         "--exchange", "amq.topic", "--routing-key", "nobody.listens")  # fmt: skip
    want = [
        "problem: no live server",
        "problem: 1 connector(s) defined but no server holds the lease to run them",
        f"problem: load balancer {qs.lb_dir}: not running",
    ]
    wait_for(lambda: status() == (3, want), 20, what="the server and the lease holder gone")
    data = json.loads(zato("cluster", "status", qs.path, "--json", check=False).stdout)
    assert data["problems"] == [p.removeprefix("problem: ") for p in want]

    qs._merge(f"{qs.server_dir('server1')}/config/server.conf", "kvdb", {"url": "redis://127.0.0.1:1/0"})
    proc = zato("cluster", "status", qs.path, check=False)
    assert proc.returncode == 1 and "Lease: unknown (Redis unreachable: see below)" in proc.stdout
    # who is live and who holds the lease are unknown, not absent: before, with Redis unreachable
    # from where it ran, it said "problem: no live server" and "1 connector(s) defined but no
    # server holds the lease to run them" of a cluster it could not see
    problems = [line for line in proc.stdout.splitlines() if line.startswith("problem: ")]
    assert problems == [f"problem: load balancer {qs.lb_dir}: not running"], proc.stdout
    assert re.search(r"^server1 +\? ", proc.stdout, re.M), proc.stdout


def _children(parent: int | None, marker: bytes) -> list[int]:
    """The pids of `parent`'s children whose command line holds `marker`."""
    found = [pid for pid, ppid, cmd in process_table() if ppid == parent and marker in cmd]
    assert found, f"no child of {parent} with {marker!r}"
    return found


Status = Callable[[], tuple[int, list[str]]]


def _stopped_until(pids: list[int], *expected: tuple[Status, str]) -> None:
    """SIGSTOP `pids` until each status exits 3 with one problem line, starting with its
    prefix (at most 20 s; else what it said last is the error), then SIGCONT them."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for status, prefix in expected:
            said: list[tuple[int, list[str]]] = []

            def says(status: Status = status, prefix: str = prefix, said: list = said) -> bool:
                said.append(status())
                code, problems = said[-1]
                return code == 3 and len(problems) == 1 and problems[0].startswith(prefix)

            try:
                wait_for(says, 20, interval=0.5, what=f"exit 3 and {prefix!r}")
            except AssertionError:
                raise AssertionError(f"the status said {said[-1]}, not exit 3 and {prefix!r}...") from None
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_status_help_gives_the_exit_codes() -> None:
    out = zato("cluster", "status", "--help", check=False).stdout
    assert "0  all is well" in out and "1  the cluster could not be read" in out
    assert "3  read, and something is wrong" in out
