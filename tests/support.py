"""Helpers shared by the integration and HA tests: free ports, unique cluster names,
running the CLI, waiting for conditions. Real processes only; every test its own cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

REDIS_URL = os.environ.get("ZATO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("ZATO_TEST_PG_URL", "postgresql://postgres:postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("ZATO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

_used_ports: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, never handed out twice in one test run."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports and port + 1 not in _used_ports and port < 64000:
            _used_ports.add(port)
            return port


def free_port_block(n: int) -> int:
    """The first of `n` consecutive free ports (for quickstart --base-port)."""
    for _ in range(200):
        base = free_port()
        ports = range(base, base + n)
        if all(_is_free(p) and p not in _used_ports for p in ports[1:]):
            _used_ports.update(ports)
            return base
    raise RuntimeError(f"no block of {n} free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def zato(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the `zato` CLI of this checkout; returns the completed process (text mode)."""
    proc = subprocess.run(
        [sys.executable, "-m", "zato", *args], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"zato {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def wait_for(pred: Callable[[], object], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> object:
    """Poll pred() until it returns a truthy value; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}; last error: {last_exc!r}")


def cleanup_redis(cluster: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"zato:{cluster}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
