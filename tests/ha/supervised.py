"""Connector supervisors as real processes, without the HTTP server around them.

Used by the lease/membership integration tests and the HA tests that only need the
supervisor side (the full-server tests use the Quickstart helper of tests/support.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import redis

from tests.support import REDIS_URL, cleanup_redis, cluster_name, stop_process, wait_for
from zato.config.component import SERVER, write_marker

FAST_LEASE = {"ttl": "1.5", "renew_interval": "0.3", "renew_deadline": "1.0", "retry_interval": "1.0"}


def write_server_dir(root: str, name: str, cluster: str, port: int, redis_url: str, lease: dict) -> str:
    path = os.path.join(root, name)
    write_marker(path, SERVER)
    os.makedirs(os.path.join(path, "config"), exist_ok=True)
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    lease_lines = "".join(f"{k} = {v}\n" for k, v in lease.items())
    with open(os.path.join(path, "config", "server.conf"), "w") as f:
        f.write(
            f"[main]\nname = {name}\nhost = 127.0.0.1\nport = {port}\n"
            f"[cluster]\nname = {cluster}\n"
            f"[odb]\nurl = sqlite:///{root}/odb.db\n"
            f"[kvdb]\nurl = {redis_url}\n"
            "[auth]\nadmin_username = admin\nadmin_password = admin-pw-123\ncluster_secret = s3cret-value\n"
            "[membership]\nheartbeat = 0.5\nttl = 2.0\n"
            f"[lease]\n{lease_lines}"
        )
    return path


@dataclass
class SupervisedCluster:
    """N supervisors of one cluster, each a real `python -m zato.connector.supervisor`."""

    size: int = 3
    redis_url: str = REDIS_URL
    lease: dict = field(default_factory=lambda: dict(FAST_LEASE))
    cluster: str = field(default_factory=lambda: cluster_name("sup"))
    root: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="zato-sup-"))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f"server{i}" for i in range(1, self.size + 1)]
        self.dirs = {
            name: write_server_dir(self.root, name, self.cluster, 17010 + i, self.redis_url, self.lease)
            for i, name in enumerate(names)
        }
        self.client = redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=2)

    def start(self, name: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zato.connector.supervisor", self.dirs[name]],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dirs[name], "logs", "stderr.log"), "a"),  # noqa: SIM115
        )
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        for name in self.dirs:
            self.start(name)

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self.dirs[name], "logs", "server.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def holder(self) -> dict | None:
        from zato.coord.lease import read_holder

        h = read_holder(self.client, self.cluster)
        return None if h is None else {"server": h.server, "epoch": h.epoch}

    def wait_holder(self, exclude: tuple[str, ...] = (), min_epoch: int = 0, timeout: float = 30) -> dict:
        def ok() -> dict | None:
            h = self.holder()
            return h if h and h["server"] not in exclude and h["epoch"] >= min_epoch else None

        return wait_for(ok, timeout=timeout, what=f"a lease holder of {self.cluster}")

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.procs[name].pid, sig)

    def stop(self, name: str, timeout: float = 10) -> int | None:
        return stop_process(self.procs[name], timeout)

    def close(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                self.stop(name)
        if self.redis_url == REDIS_URL:
            cleanup_redis(self.cluster)
        self.client.close()
        shutil.rmtree(self.root, ignore_errors=True)  # the servers' folders, logs and ODB
