"""A Zato cluster on hosts that can fail: the lab of tests/hosts and bench/faults.

    redis   10.X.Y.10  a master, a replica and a Sentinel (tests/hosts/redis_host.py): every
                       server and the LB find the master through the Sentinel
    s1..s3  .11-.13    one Zato server each, created and started with the CLI, bound to its address
    lb      .20        the load balancer (`zato create load-balancer --host`)
    client  .30        the checkers' HTTP clients run in threads inside this namespace
    root    .1 .2 .3   the forwarder (tests/hosts/forward.py): each host's own routes to the
                       two redis-servers (.1:port, where latency is added; the host's connections
                       to REDIS_IP:6379/6380 are DNATed to them), RabbitMQ at .2:5672 and
                       PostgreSQL at .3:5432, forwarded to the machine's shared services

So a partition can cut the holder from Redis alone (its Redis route) or from the broker alone
(.2), and a blackhole cuts the whole host. close() stops everything by pid and removes every
namespace, veth, rule and the bridge, even after a failure.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

import redis

from tests.hosts.net import Host, LabError, Net
from tests.hosts.redis_host import MASTER_NAME, PORTS, SENTINEL_PORT, RedisHost
from tests.support import AMQP_URL, PG_URL, Quickstart, cluster_name, lb_up, wait_for, zato
from zato.coord.keys import Keys
from zato.coord.lease import current_epoch, read_holder
from zato.lb.haproxy import remove_stale_checks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER_PORT = 17010
LB_PORT = 11223
FAST = {"lease": {}, "membership": {"heartbeat": "0.5", "ttl": "2.0"}}

SERVICES = '''
import json, os, time
from zato.service import Service


class Record(Service):
    """Records (epoch, server, item) of every connector-driven call it accepts, on local disk:
    the checker reads every server's file, so nothing here depends on the server's links."""
    name = "lab.record"

    def handle(self):
        epoch = int(self.request.headers.get("X-Zato-Epoch") or self.request.headers.get("x-zato-epoch") or 0)
        line = json.dumps({"epoch": epoch, "server": self.server.name, "t": time.time(),
                           "item": self.request.payload})
        with open(os.path.join(LAB_ROOT, f"accepted-{self.server.name}.jsonl"), "a") as f:
            f.write(line + "\\n")


class Send(Service):
    """Sends each item of the payload through the outgoing AMQP connection "out"."""
    name = "lab.send"

    def handle(self):
        for item in self.request.payload["items"]:
            self.outgoing.amqp.send(item, "out")


class Fetch(Service):
    """GETs the LB's /zato/ping through the outgoing HTTP connection "lab-lb" (made by the test
    that needs it): a service whose worker reads a definition from the ODB."""
    name = "lab.fetch"

    def handle(self):
        r = self.outgoing.plain_http["lab-lb"].conn.get(self.cid)
        self.response.payload = {"status": r.status_code, "server": self.server.name}


class Slow(Service):
    """Answers after ?s= seconds: a slow but live service."""
    name = "lab.slow"

    def handle(self):
        import gevent
        with open(os.path.join(LAB_ROOT, f"slow-{self.server.name}.jsonl"), "a") as f:
            f.write(json.dumps({"id": self.request.params.get("id", ""), "server": self.server.name}) + "\\n")
        gevent.sleep(float(self.request.params.get("s", "1")))
        self.response.payload = {"slept": self.request.params.get("s", "1"), "server": self.server.name}
'''


class Lab:
    """Build with create(), then start(); always close()."""

    def __init__(self, servers: int = 3, conf: dict | None = None):
        self.net = Net()
        self.n_servers = servers
        self.conf = conf or FAST
        self.cluster = cluster_name("lab")
        self.root = tempfile.mkdtemp(prefix=f"{self.net.prefix}-")
        self.names = [f"s{i}" for i in range(1, servers + 1)]
        self.routes: dict[str, dict[int, int]] = {}  # host -> {redis-server port: its route's port}
        self.redis_host: RedisHost | None = None
        self._procs: list[subprocess.Popen] = []
        self.queues: dict[str, str] = {}  # AMQP queue -> the test that made it (deleted again after close)
        self._forwarder: subprocess.Popen | None = None

    # -- layout ------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    def server_dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    @property
    def lb_dir(self) -> str:
        return os.path.join(self.root, "lb")

    @property
    def lb_url(self) -> str:
        return f"http://{self.host('lb').ip}:{LB_PORT}"

    def server_url(self, name: str) -> str:
        return f"http://{self.host(name).ip}:{SERVER_PORT}"

    @property
    def broker_ip(self) -> str:
        return f"{self.net.subnet}.2"

    @property
    def odb_url(self) -> str:
        return PG_URL.replace("@127.0.0.1:", f"@{self.net.subnet}.3:")

    @property
    def redis_conf(self) -> dict:
        """[kvdb] of every server and the LB: the master found through the Sentinel."""
        ip = self.host("redis").ip
        url = f"redis://{ip}:{PORTS[0]}/0"  # with sentinels set, only its credentials count
        return {"url": url, "sentinels": f"{ip}:{SENTINEL_PORT}", "sentinel_master": MASTER_NAME}

    def redis(self) -> redis.Redis:
        """A client of the lab's current Redis master straight from the test (root namespace,
        no route, no fault)."""
        assert self.redis_host
        return self.redis_host.client()

    # -- building ----------------------------------------------------------------------------
    def create(self) -> Lab:
        try:
            self.net.create()
            self.net.add_host("redis", 10)
            for i, name in enumerate(self.names):
                self.net.add_host(name, 11 + i)
            self.net.add_host("lb", 20)
            self.net.add_host("client", 30)
            self.net.alias(2)
            self.net.alias(3)
            self.redis_host = RedisHost(self.host("redis"), self.root, self._spawn)
            self.redis_host.start()
            self._start_forwarder()
            self._create_cluster()
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=ROOT, **kw)
        self._procs.append(proc)
        return proc

    def _start_forwarder(self) -> None:
        from tests.support import free_port

        gw = self.net.gateway
        redis_ip = self.host("redis").ip
        specs = [
            f"{self.broker_ip}:5672={AMQP_URL.split('@')[1].split('/')[0]}",
            f"{self.net.subnet}.3:5432={PG_URL.split('@')[1].split('/')[0]}",
        ]
        for name in [*self.names, "lb"]:
            self.routes[name] = {port: free_port() for port in PORTS}
            for port, route in self.routes[name].items():
                specs.append(f"{gw}:{route}={redis_ip}:{port}")
                self.net.redirect(self.host(name), redis_ip, port, gw, route)
        self._forwarder = self._spawn(
            [sys.executable, "-m", "tests.hosts.forward", *specs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._forwarder.stdout.readline().strip()
        if line != "ready":
            raise LabError(f"the lab's forwarder did not start: {line!r}")

    def _create_cluster(self) -> None:
        zato("create", "cluster", self.odb_url, self.cluster)
        first = None
        for name in self.names:
            common = [
                "--redis",
                self.redis_conf["url"],
                "--host",
                self.host(name).ip,
                "--port",
                str(SERVER_PORT),
                "--name",
                name,
                "--workers",
                "1",
            ]
            if first is None:
                zato(
                    "create",
                    "server",
                    self.server_dir(name),
                    "--odb",
                    self.odb_url,
                    "--cluster",
                    self.cluster,
                    *common,
                )
                first = self.server_dir(name)
            else:
                zato("create", "server", self.server_dir(name), "--join", first, *common)
            conf = os.path.join(self.server_dir(name), "config", "server.conf")
            for section, values in {**self.conf, "kvdb": self.redis_conf}.items():
                Quickstart._merge(conf, section, values)
        zato(
            "create",
            "load-balancer",
            self.lb_dir,
            "--join",  # the cluster and its secret, which verifies the servers' membership
            first,
            "--redis",
            self.redis_conf["url"],
            "--host",
            self.host("lb").ip,
            "--port",
            str(LB_PORT),
        )
        Quickstart._merge(os.path.join(self.lb_dir, "config", "lb.conf"), "kvdb", self.redis_conf)
        module = os.path.join(self.root, "lab_services.py")
        with open(module, "w") as f:
            f.write(f"LAB_ROOT = {self.root!r}\n" + SERVICES)
        self._deploy_on_start = module

    def start(self, *names: str) -> None:
        """`zato start DIR` inside each named host (default: every server, then the LB)."""
        names = names or (*self.names, "lb")
        servers = [n for n in names if n != "lb"]
        self._start_cli(servers)
        if "lb" in names:
            self._start_cli(["lb"])

    def _start_cli(self, names: list[str]) -> None:
        procs = []
        for name in names:
            path = self.lb_dir if name == "lb" else self.server_dir(name)
            argv = self.host(name).argv(sys.executable, "-m", "zato", "start", path)
            procs.append(
                subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            )
        for p in procs:
            out, _ = p.communicate(timeout=90)
            if p.returncode != 0:
                raise AssertionError(f"{' '.join(p.args)} exited {p.returncode}:\n{out}")

    def deploy(self) -> None:
        zato("deploy", self.server_dir(self.names[0]), self._deploy_on_start)

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess:
        """`zato COMMAND DIR ARGS` on the first server's directory, e.g. cli("conn create
        amqp-def", "--name", "rabbit")."""
        return zato(*command.split(), self.server_dir(self.names[0]), *args)

    def set_lb_haproxy(self, values: dict) -> None:
        """lb.conf [haproxy] becomes `values` alone (empty: every default), applied as an operator
        does: SIGHUP to the LB controller, which re-reads lb.conf and reloads HAProxy. Returns
        once the rewritten haproxy.cfg runs with every server UP."""
        conf = os.path.join(self.lb_dir, "config", "lb.conf")
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(conf)
        cp.remove_section("haproxy")
        if values:
            cp.add_section("haproxy")
            for key, value in values.items():
                cp.set("haproxy", key, str(value))
        with open(conf, "w") as f:
            cp.write(f)
        cfg = os.path.join(self.lb_dir, "config", "haproxy.cfg")
        before = os.stat(cfg).st_mtime_ns
        os.kill(self.pid("lb"), signal.SIGHUP)
        wait_for(lambda: os.stat(cfg).st_mtime_ns != before, timeout=15, what="haproxy.cfg rewritten")
        time.sleep(1.0)  # the reload: the new HAProxy checks the servers
        wait_for(lambda: lb_up(self) == set(self.names), timeout=30, what="every server UP in the LB")

    # -- who does what -----------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        path = os.path.join(self.lb_dir if name == "lb" else self.server_dir(name), "pidfile")
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def holder(self) -> tuple[str, int] | None:
        h = read_holder(self.redis(), self.cluster)
        return (h.server, h.epoch) if h else None

    def epoch(self) -> int:
        return current_epoch(self.redis(), self.cluster)

    def wait_holder(self, other_than: str = "", timeout: float = 30) -> tuple[str, int]:
        return wait_for(
            lambda: (h := self.holder()) and h[0] != other_than and h, timeout=timeout, what="a lease holder"
        )

    def reset_accepted(self) -> None:
        for name in self.names:
            path = os.path.join(self.root, f"accepted-{name}.jsonl")
            if os.path.exists(path):
                os.truncate(path, 0)

    def accepted(self) -> list[dict]:
        """Every (epoch, server, item) lab.record accepted, on every server."""
        out = []
        for name in self.names:
            try:
                with open(os.path.join(self.root, f"accepted-{name}.jsonl")) as f:
                    out += [json.loads(line) for line in f if line.strip()]
            except FileNotFoundError:
                pass
        return out

    def slow_started(self) -> dict[str, str]:
        """id -> server of every lab.slow call that started (each server writes its own file)."""
        out = {}
        for name in self.names:
            with (
                contextlib.suppress(FileNotFoundError),
                open(os.path.join(self.root, f"slow-{name}.jsonl")) as f,
            ):
                out.update((d["id"], d["server"]) for d in map(json.loads, f) if d)
        return out

    def slow_runs(self, prefix: str) -> Counter:
        """id -> how many times lab.slow ran it, on every server, for the ids starting with `prefix`."""
        runs: Counter = Counter()
        for name in self.names:
            with (
                contextlib.suppress(FileNotFoundError),
                open(os.path.join(self.root, f"slow-{name}.jsonl")) as f,
            ):
                runs.update(d["id"] for d in map(json.loads, f) if d["id"].startswith(prefix))
        return runs

    def connectors(self, name: str) -> list[int]:
        """Pids of the connector processes running on the host (by their process title)."""
        out = []
        for pid in self.net.pids(self.host(name)):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().startswith(b"zato-connector: "):
                        out.append(pid)
            except OSError:
                pass
        return out

    # -- process faults ----------------------------------------------------------------------
    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to the server's whole process group (arbiter, workers, supervisor, connectors)."""
        os.killpg(self.pid(name), sig)

    def pause(self, name: str) -> None:
        self.signal(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.signal(name, signal.SIGCONT)

    def delay(self, name: str, ms: float, jitter_ms: float = 0) -> None:
        """Latency (+- jitter) on the host's Redis routes, both ways."""
        assert self._forwarder and self._forwarder.stdin and self._forwarder.stdout
        for route in self.routes[name].values():
            self._forwarder.stdin.write(f"delay {route} {ms} {jitter_ms}\n")
            self._forwarder.stdin.flush()
            assert self._forwarder.stdout.readline().startswith("delay")

    def delay_odb(self, ms: float) -> None:
        """Latency on every host's link to the ODB (PostgreSQL: one route, shared by all), both
        ways; 0 takes it away."""
        assert self._forwarder and self._forwarder.stdin and self._forwarder.stdout
        self._forwarder.stdin.write(f"delay 5432 {ms} 0\n")
        self._forwarder.stdin.flush()
        assert self._forwarder.stdout.readline().startswith("delay")

    def cut_redis(self, name: str, only: str = "") -> None:
        """Cut the host from Redis alone: both redis-servers (its routes) and the Sentinel;
        the broker, the ODB and the other hosts still reach it (lab.net.heal undoes it).
        only="in": Redis gets what the host sends, the host gets nothing back (net.cut_port)."""
        host = self.host(name)
        for route in self.routes[name].values():
            self.net.cut_port(host, self.net.gateway, route, only)
        self.net.cut_port(host, self.host("redis").ip, SENTINEL_PORT, only)

    def cut_broker(self, name: str) -> None:
        """Cut the host from RabbitMQ alone (lab.net.heal undoes it)."""
        self.net.cut_port(self.host(name), self.broker_ip, 5672)

    def forget_hand_overs(self) -> None:
        """No server and no connector noted for a hand-over of the lease (zato.connector.handover):
        the next broker cut is handled as a first one."""
        client, keys = self.redis(), Keys(self.cluster)
        client.delete(*[keys.lease_yield(name) for name in self.names])
        for key in client.scan_iter(match=keys.lease_handover("*")):
            client.delete(key)

    # -- teardown ----------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop everything (by pid), remove the namespaces and the bridge, clean Redis-side
        nothing (the lab's Redis dies with its host). Returns leftovers (should be [])."""
        for name in [*self.names, "lb"]:
            pid = self.pid(name)
            if pid and name in self.net.hosts:
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, sig)
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        # The LB controller was SIGKILLed, maybe while checking a config: its private copy
        # (stats password included) would wait for the next controller on this host.
        remove_stale_checks()
        left = self.net.close()
        if not os.environ.get("ZATO_LAB_KEEP"):  # ZATO_LAB_KEEP=1: keep configs and logs to read
            shutil.rmtree(self.root, ignore_errors=True)
        return left


def wait_all_up(lab: Lab, timeout: float = 30) -> None:
    """Every server a live member, the LB answering, and a holder."""
    from zato.config.settings import load_server_settings
    from zato.coord import membership
    from zato.coord.signing import member_key

    key = member_key(load_server_settings(lab.server_dir(lab.names[0])).cluster_secret, lab.cluster)
    wait_for(
        lambda: len(membership.live_servers(lab.redis(), lab.cluster, key)) == lab.n_servers,
        timeout=timeout,
        what="every server a live member",
    )
    lab.wait_holder(timeout=timeout)
