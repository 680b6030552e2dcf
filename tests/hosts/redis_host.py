"""The lab's Redis host: a master, a replica and a Sentinel in the Redis namespace, and the one
fault only they can have: a Sentinel failover that loses a write the old master acknowledged.

    REDIS_IP:6379, REDIS_IP:6380   redis-server, one the master and one its replica (which is
                                   which changes with every failover)
    REDIS_IP:26379                 the Sentinel (quorum 1, a master down after 1 s)

Every server and the LB find the master through the Sentinel, as on real hosts; each host's
connections to either redis-server are rewritten (nftables DNAT in its own namespace) to its
own route through the lab's forwarder, so latency and cuts stay per host (lab.py).

The lost write: isolate_replica() drops every packet of the replication connection (an
nftables rule in the Redis namespace), so whatever the master acknowledges from then on never
reaches the replica; fail_over() SIGKILLs the master and lifts the rule, and the Sentinel
promotes the replica; restore() brings the killed server back as the new master's replica, so
the group has two servers again.

Why a silent cut and not a stopped replica (SIGSTOP, as before): the Sentinel promotes no
replica whose link to the master went down more than 10 x down-after-milliseconds before the
master did ("-failover-abort-no-good-slave"). A stopped replica whose link the master closed
counted its link down from the isolation, so an isolation longer than 10 s (a loaded machine)
made it unpromotable for good (one run said 63 s). Behind a silent cut the replica's link stays
"up" to it (repl-timeout is raised so it stays so) until, after the master is down, the replica
is told to drop it (CLIENT KILL TYPE master) just before the cut is lifted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable

import redis

from tests.hosts.net import Host, sh
from tests.support import wait_for

PORTS = (6379, 6380)
SENTINEL_PORT = 26379
MASTER_NAME = "lab"
SENTINEL_DOWN_AFTER_S = 1.0  # the Sentinel's down-after-milliseconds, in seconds
REPL_TIMEOUT = 3600  # seconds: a silently cut replication link must not time out while isolated
CUT_TABLE = "zlab_repl"  # the nftables table of the replication cut (its own: heal() keeps it)
SPLIT_TABLE = "zlab_split"  # the master cut off from the Sentinel and the replica (partition_master)


class RedisHost:
    def __init__(self, host: Host, root: str, spawn: Callable[..., subprocess.Popen]):
        self.host, self.root, self._spawn = host, root, spawn
        self.procs: dict[int, subprocess.Popen] = {}
        self.isolated: int | None = None  # the replica isolate_replica() cut off
        self.killed: int | None = None  # the master fail_over() SIGKILLed
        self.partitioned: int | None = None  # the master partition_master() cut off

    # -- building ----------------------------------------------------------------------------
    def start(self) -> None:
        master, replica = PORTS
        self._server(master)
        self._server(replica, "--replicaof", self.host.ip, str(master))
        self._wait_replica(replica)
        conf = os.path.join(self.root, "sentinel.conf")  # the Sentinel rewrites it: its own file
        with open(conf, "w") as f:
            f.write(
                f"bind {self.host.ip}\nport {SENTINEL_PORT}\ndir {self.root}\n"
                f"sentinel monitor {MASTER_NAME} {self.host.ip} {master} 1\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {int(SENTINEL_DOWN_AFTER_S * 1000)}\n"
                f"sentinel failover-timeout {MASTER_NAME} 3000\n"
                f"logfile {os.path.join(self.root, 'sentinel.log')}\n"
            )
        self._spawn(self.host.argv("redis-server", conf, "--sentinel"), stdout=subprocess.DEVNULL)
        wait_for(lambda: self._sentinel_knows(replica), timeout=20, what="the Sentinel to know the replica")

    def _server(self, port: int, *extra: str) -> None:
        self.procs[port] = self._spawn(
            self.host.argv(
                "redis-server",
                "--bind",
                self.host.ip,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                self.root,
                "--dbfilename",
                f"dump-{port}.rdb",
                "--repl-timeout",
                str(REPL_TIMEOUT),
                *extra,
            ),  # fmt: skip
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: self.client(port).ping(), timeout=10, what=f"redis-server on port {port}")

    def _wait_replica(self, port: int) -> None:
        wait_for(
            lambda: self.client(port).info("replication").get("master_link_status") == "up",
            timeout=20,
            what=f"the replica on port {port} to sync",
        )

    def _sentinel_knows(self, replica: int) -> bool:
        found = self.sentinel().sentinel_slaves(MASTER_NAME)
        return any(int(r["port"]) == replica and "s_down" not in r["flags"] for r in found)

    # -- clients -----------------------------------------------------------------------------
    def client(self, port: int | None = None) -> redis.Redis:
        """A client of one redis-server (default: the master the Sentinel names now), straight
        from the root namespace (no route, no fault)."""
        return redis.Redis(self.host.ip, port or self.master_port(), decode_responses=True, socket_timeout=2)

    def sentinel(self) -> redis.Redis:
        return redis.Redis(self.host.ip, SENTINEL_PORT, decode_responses=True, socket_timeout=2)

    def master_port(self) -> int:
        return int(self.sentinel().sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    # -- the fault ---------------------------------------------------------------------------
    def isolate_replica(self) -> int:
        """Cut the replication connection silently: from now on nothing the master
        acknowledges reaches the replica, and neither side is told. Returns the master's port."""
        master = self.master_port()
        replica = next(p for p in PORTS if p != master)
        client = self.client(master)
        assert client.wait(1, 2000) == 1, "the replica has everything written so far"
        links = client.client_list(_type="replica")
        assert len(links) == 1, links
        link_port = int(links[0]["addr"].rsplit(":", 1)[1])  # the replica's end of the link
        self._cut(link_port)
        self.isolated = replica
        return master

    def _cut(self, port: int) -> None:
        script = [
            f"table inet {CUT_TABLE} {{",
            "  chain output { type filter hook output priority -10; policy accept; }",
            "}",
            f"add rule inet {CUT_TABLE} output tcp sport {port} drop",
            f"add rule inet {CUT_TABLE} output tcp dport {port} drop",
        ]
        sh("ip", "netns", "exec", self.host.ns, "nft", "-f", "-", input="\n".join(script) + "\n")

    def _uncut(self) -> None:
        sh("ip", "netns", "exec", self.host.ns, "nft", "delete", "table", "inet", CUT_TABLE, check=False)

    def fail_over(self, timeout: float = 30) -> int:
        """SIGKILL the master, lift the cut, and wait until the Sentinel names the replica the
        master (and it says so itself). Returns the new master's port."""
        assert self.isolated is not None, "isolate_replica() first: the replica must miss a write"
        master, replica = self.master_port(), self.isolated
        self.procs[master].kill()
        self.procs[master].wait(10)
        self.killed = master
        # The replica drops its end of the link while the cut still holds. The dead master's
        # kernel keeps retransmitting what it sent behind the cut (the lost write); once the
        # cut is lifted, that would reach a replica still reading the link (one run promoted a
        # replica that had the write after all). A closed end answers it with a reset instead.
        self.client(replica).client_kill_filter(_type="master")
        self._uncut()
        self.isolated = None

        def promoted() -> bool:
            return self.master_port() == replica and self.client(replica).role()[0] == "master"

        try:
            try:
                wait_for(promoted, timeout=timeout / 2, what="the Sentinel to promote the replica")
            except AssertionError:
                # On a loaded machine the Sentinel can give up an attempt (and wait 2 x
                # failover-timeout before the next): ask for the failover, as an operator would
                # (still the Sentinel's choice of replica).
                with contextlib.suppress(redis.RedisError):
                    self.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
                wait_for(promoted, timeout=timeout / 2, what="the Sentinel to promote the replica")
        except AssertionError as e:
            raise AssertionError(
                f"{e}; {self.replica_view(replica)}; the Sentinel's log ends with:\n{self.sentinel_log(60)}"
            ) from None
        return replica

    def replica_view(self, port: int) -> str:
        """What the Sentinel and the replica itself say of it: why a failover found no good
        replica (s_down, a stale INFO, a master link down too long) is in these fields."""
        fields = ("flags", "last-ok-ping-reply", "info-refresh", "master-link-down-time", "slave-priority")
        try:
            known = [r for r in self.sentinel().sentinel_slaves(MASTER_NAME) if int(r["port"]) == port]
            sentinel = {k: known[0].get(k) for k in fields} if known else "not among its replicas"
        except Exception as e:  # noqa: BLE001 - a diagnostic must not hide the failure it explains
            sentinel = f"unreadable ({e!r})"
        try:
            info = self.client(port).info("replication")
            own = {k: info.get(k) for k in ("role", "master_link_status", "master_link_down_since_seconds")}
        except Exception as e:  # noqa: BLE001
            own = f"unreadable ({e!r})"
        return f"the Sentinel's view of the replica on port {port}: {sentinel}; its own: {own}"

    def sentinel_log(self, lines: int = 40) -> str:
        try:
            with open(os.path.join(self.root, "sentinel.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return f"(no Sentinel log: {e})"

    def partition_master(self) -> int:
        """Cut the master off from the Sentinel and the replica (both of this host), while the
        servers and the LB still reach it (their connections come from the lab's forwarder, at
        the bridge's gateway): a partition between Redis hosts. The Sentinel promotes the
        replica, and the old master still takes the writes of every connection to it.
        Returns the old master's port; heal_partition() undoes it."""
        master, ip = self.master_port(), self.host.ip
        script = [
            f"table inet {SPLIT_TABLE} {{",
            "  chain input { type filter hook input priority -10; policy accept; }",
            "}",
            f"add rule inet {SPLIT_TABLE} input ip saddr {ip} ip daddr {ip} tcp dport {master} drop",
            f"add rule inet {SPLIT_TABLE} input ip saddr {ip} ip daddr {ip} tcp sport {master} drop",
        ]
        sh("ip", "netns", "exec", self.host.ns, "nft", "-f", "-", input="\n".join(script) + "\n")
        self.partitioned = master
        return master

    def heal_partition(self, timeout: float = 30) -> None:
        """Lift partition_master()'s cut and wait until the Sentinel made the old master a
        replica of the one it promoted, synced (its writes since the cut are gone then)."""
        sh("ip", "netns", "exec", self.host.ns, "nft", "delete", "table", "inet", SPLIT_TABLE, check=False)
        if self.partitioned is None:
            return
        port, self.partitioned = self.partitioned, None
        if self.master_port() != port:
            wait_for(
                lambda: self.client(port).role()[0] == "slave",
                timeout=timeout,
                what="the old master a replica",
            )
            self._wait_replica(port)

    def restore(self) -> None:
        """Undo the fault: resume a stopped replica; start a killed master again as the new
        master's replica, and wait until it synced and the Sentinel knows it."""
        self.heal_partition()
        if self.isolated is not None:
            self._uncut()
            self.isolated = None
        if self.killed is not None:
            port, self.killed = self.killed, None
            self._server(port, "--replicaof", self.host.ip, str(self.master_port()))
            self._wait_replica(port)
            wait_for(lambda: self._sentinel_knows(port), timeout=30, what="the Sentinel to know the replica")
