"""Helpers shared by the integration and HA tests: free ports, unique cluster names,
running the CLI, waiting for conditions. Real processes only; every test its own cluster."""

from __future__ import annotations

import contextlib
import glob
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tests import cli_fork

REDIS_URL = os.environ.get("ZATO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("ZATO_TEST_PG_URL", "postgresql://postgres:postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("ZATO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

_used_ports: set[int] = set()

# Ports are picked below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999
# by default): a port picked with bind(0) lies inside it, and between the pick and the moment a
# server binds it, any outgoing connection of any process (to Redis, to the broker) may take it
# as its local port ("port ... is not free" at start-up, seen in CI).
_PICK_LOW, _PICK_HIGH = 20000, 32000
_rng = random.Random(os.getpid() ^ time.time_ns())


def _worker_slice(low: int, high: int) -> tuple[int, int]:
    """The part of [low, high) that this pytest-xdist worker picks from (`make test` runs the
    suite in several processes): each worker has its own ports, so two tests running at once
    cannot pick the same one between the pick and the bind. The whole range outside xdist."""
    name, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (name.startswith("gw") and name[2:].isdigit() and count.isdigit() and int(count) > 1):
        return low, high
    width = (high - low) // int(count)
    start = low + int(name[2:]) % int(count) * width
    return start, start + width


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _pick_range() -> tuple[int, int]:
    return _worker_slice(_PICK_LOW, min(_PICK_HIGH, _ephemeral_low() - 2))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, outside the ephemeral range, never handed out twice
    in one test run."""
    low, high = _pick_range()
    for _ in range(2000):
        port = _rng.randrange(low, high - 1)
        if port in _used_ports or port + 1 in _used_ports or not _is_free(port):
            continue
        _used_ports.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


def free_port_block(n: int) -> int:
    """The first of `n` consecutive free ports (for quickstart --base-port)."""
    for _ in range(200):
        base = free_port()
        ports = range(base, base + n)
        if base + n <= _pick_range()[1] and all(_is_free(p) and p not in _used_ports for p in ports[1:]):
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
    """Run the `zato` CLI of this checkout; returns the completed process (text mode). Forked
    from a process that has imported the command's modules (tests/cli_fork.py says what stays as
    in a fresh `python -m zato`); a fresh process when `kw` asks what only one gives (env=)."""
    proc = cli_fork.run(args, timeout, **kw)
    if proc is None:
        proc = subprocess.run(
            [sys.executable, "-m", "zato", *args], capture_output=True, text=True, timeout=timeout, **kw
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"zato {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The CLI's failure as a user reads it: exit 1 and one `zato: error:` line holding each
    of `fragments`; that line. Warnings said before it (a `zato start`'s, on stderr) aside."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("zato: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def popen_interruptible(argv: list[str], **kw: Any) -> subprocess.Popen:
    """A process that Ctrl-C (SIGINT) interrupts as it would in a terminal. A child inherits an
    ignored SIGINT, and Python then installs no KeyboardInterrupt for it: pytest run in the
    background of a shell without job control (`make test &`, CI runners) ignores it, so a test
    sending SIGINT would find its process deaf to it. A handled signal is reset to its default
    at exec, so the child gets Python's own handler."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(argv, **kw)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for(
    pred: Callable[[], object], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> object:
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


def lb_up(cluster) -> set[str]:  # noqa: ANN001 - a Quickstart or a host lab: anything with lb_dir
    """Names of the servers its load balancer reports UP."""
    from zato.lb.status import describe

    return {s["name"] for s in describe(cluster.lb_dir)["servers"] if s["state"].startswith("UP")}


def process_table() -> list[tuple[int, int, bytes]]:
    """(pid, parent pid, raw cmdline) of every process readable in /proc right now."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        rows.append((int(entry), ppid, cmd))
    return rows


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> int:
    """SIGTERM by pid, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stderr:
        proc.stderr.close()
    return proc.returncode


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[int, Any]]:
    """A redis-server of the test's own on a free port (no persistence): (port, admin client).
    For what cannot be done to the shared Redis: ACL users, shutting it down."""
    import redis

    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = redis.Redis(port=port, socket_timeout=2)
    try:
        wait_for(admin.ping, 15, what="the test's redis-server")
        yield port, admin
    finally:
        admin.close()
        proc.kill()
        proc.wait(10)


def redis_server(port: int, folder: Any, *extra: str) -> subprocess.Popen:
    """A redis-server on `port` (no persistence); `folder`: its working folder, where a replica
    writes the copy its master sends."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(folder)]
    return subprocess.Popen([*argv, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def master_and_replica(folder: Any) -> Iterator[tuple[int, int, Any]]:
    """A redis-server of the test's own and a replica of it, each on a free port, working in
    `folder`: (the master's port, the replica's, an admin client of the replica). Both stopped
    by their pids."""
    import redis

    master_port, replica_port = free_port(), free_port()
    procs = [redis_server(master_port, folder)]
    procs.append(redis_server(replica_port, folder, "--replicaof", "127.0.0.1", str(master_port)))
    admin = redis.Redis(port=replica_port, socket_timeout=2, decode_responses=True)
    try:
        wait_for(lambda: admin.info("replication").get("master_link_status") == "up", 30,
                 what="the replica linked to its master")  # fmt: skip
        yield master_port, replica_port, admin
    finally:
        admin.close()
        for proc in procs:
            stop_process(proc)


def sqlite_server(tmp_path, cluster: str) -> tuple[Any, Any]:  # noqa: ANN001
    """(ODB, ServerSettings) of a server `s1` of `cluster` in tmp_path: an ODB in a SQLite file
    (schema and cluster made) and the test Redis. The caller disposes of the ODB."""
    from zato.config.settings import RedisSettings, ServerSettings
    from zato.odb import api as odb_api
    from zato.odb.engine import ODB, create_schema

    url = f"sqlite:///{tmp_path / 'odb.db'}"
    odb = ODB(url)
    create_schema(odb.engine)
    odb_api.ensure_cluster(odb, cluster)
    settings = ServerSettings(
        path=str(tmp_path), name="s1", cluster=cluster, host="127.0.0.1", port=1, workers=1, odb_url=url,
        redis=RedisSettings(url=REDIS_URL), admin_username="admin", admin_password="pw", cluster_secret="s",
    )  # fmt: skip
    return odb, settings


@contextlib.contextmanager
def sqlite_worker(tmp_path, cluster: str) -> Iterator[tuple[Any, Any]]:  # noqa: ANN001
    """(ODB, Worker): one server worker, built in this process as gunicorn builds it after fork,
    on an ODB in a SQLite file and the test Redis; both closed after."""
    from zato.server.worker import Worker

    odb, settings = sqlite_server(tmp_path, cluster)
    worker = Worker(settings)
    try:
        yield odb, worker
    finally:
        worker.close()
        odb.dispose()


def cleanup_redis(cluster: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"zato:{cluster}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class Quickstart:
    """A quickstart cluster in a temp folder, created and driven through the real CLI.

    extra_conf: {"lease": {"ttl": "1.0"}} is merged into every server.conf; a section named
    "lb:haproxy" goes into lb.conf as [haproxy]. close() stops every process by its pid.
    """

    def __init__(
        self,
        tmp_path,
        servers: int = 2,
        odb: str | None = None,
        cluster: str | None = None,
        workers: int = 1,
        extra_conf: dict | None = None,
        lb: bool = True,
        tls: bool = False,
    ):
        self.cluster = cluster or cluster_name("qs")
        self.path = os.path.join(str(tmp_path), f"qs-{self.cluster}")
        self.servers, self.odb, self.workers, self.lb = servers, odb, workers, lb
        self.extra_conf = extra_conf or {}
        self.tls = (
            tls  # quickstart --tls: the LB and the servers serve HTTPS; lb_url is https://localhost:PORT
        )
        self.server_names = [f"server{i}" for i in range(1, servers + 1)]
        self.lb_dir = os.path.join(self.path, "load-balancer")
        self.dashboard_dir = os.path.join(self.path, "dashboard")
        self.dashboard_port = 0
        self.base_port = 0
        self.lb_port = 0
        self._started: set[int] = set()  # pids (= process groups) this helper started

    # Layout

    def server_dir(self, name: str) -> str:
        return os.path.join(self.path, name)

    def member_dir(self, name: str) -> str:
        if name == "dashboard":
            return self.dashboard_dir
        return self.lb_dir if name == "load-balancer" else self.server_dir(name)

    def settings(self, name: str):  # noqa: ANN201 - ServerSettings
        from zato.config.settings import load_server_settings

        return load_server_settings(self.server_dir(name))

    def server_url(self, name: str) -> str:
        """The server's own port: https with --tls (trust ca_file; the certificate names 127.0.0.1)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.settings(name).port}"

    @property
    def lb_url(self) -> str:
        return f"https://localhost:{self.lb_port}" if self.tls else f"http://127.0.0.1:{self.lb_port}"

    @property
    def ca_file(self) -> str:
        return os.path.join(self.path, "tls", "ca.pem")

    @property
    def admin_auth(self) -> tuple[str, str]:
        s = self.settings(self.server_names[0])
        return s.admin_username, s.admin_password

    @property
    def cluster_secret(self) -> str:
        return self.settings(self.server_names[0]).cluster_secret

    def server_logs(self, pattern: str = "server.log") -> str:
        """The text of every server's logs/`pattern` (a glob: "*.log" for all of them)."""
        text = ""
        for path in sorted(glob.glob(os.path.join(self.path, "server*", "logs", pattern))):
            with open(path, errors="replace") as f:
                text += f.read()
        return text

    def deploy(self, name: str, source: str) -> None:
        """`zato deploy` of a module `name` with `source` (written to the quickstart's folder)."""
        folder = os.path.join(self.path, "modules")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name + ".py")
        with open(path, "w") as f:
            f.write(source)
        zato("deploy", self.path, path, "--wait", "60")  # every running server's workers have it

    def open_channels(self, prefix: str, names: Iterable[str]) -> None:
        """`zato channel create` of an open channel /PREFIX/NAME for service PREFIX.NAME, each."""
        for name in names:
            args = (
                "--name",
                f"{prefix}-{name}",
                "--url-path",
                f"/{prefix}/{name}",
                "--service",
                f"{prefix}.{name}",
            )
            zato("channel", "create", self.path, *args)

    # Lifecycle

    def create(self) -> Quickstart:
        self.base_port = free_port_block(self.servers)
        self.lb_port = free_port()
        self.dashboard_port = free_port()
        args = [
            "quickstart",
            "create",
            self.path,
            "--servers",
            str(self.servers),
            "--cluster",
            self.cluster,
            "--base-port",
            str(self.base_port),
            "--lb-port",
            str(self.lb_port),
            "--dashboard-port",
            str(self.dashboard_port),
            "--workers",
            str(self.workers),
        ]
        if self.odb:
            args += ["--odb", self.odb]
        if self.tls:
            args.append("--tls")
        zato(*args)
        for section, values in self.extra_conf.items():
            if section.startswith("lb:"):
                self._merge(os.path.join(self.lb_dir, "config", "lb.conf"), section[3:], values)
            else:
                for name in self.server_names:
                    self._merge(os.path.join(self.server_dir(name), "config", "server.conf"), section, values)
        return self

    @staticmethod
    def _merge(conf: str, section: str, values: dict) -> None:
        import configparser

        cp = configparser.ConfigParser(interpolation=None)
        cp.read(conf)
        if not cp.has_section(section):
            cp.add_section(section)
        for key, value in values.items():
            cp.set(section, key, str(value))
        with open(conf, "w") as f:
            cp.write(f)

    def start(self, *names: str, timeout: float = 60) -> str:
        """Start the named members (default: every server, then the LB if lb=True); what the
        `zato start` commands printed."""
        names = names or tuple(self.server_names) + (("load-balancer",) if self.lb else ())
        servers = [n for n in names if n != "load-balancer"]
        said = self._start_all([self.member_dir(n) for n in servers], timeout)
        if "load-balancer" in names:
            said += self._start_all([self.lb_dir], timeout)
        for n in names:
            pid = self.pid(n)
            if pid:
                self._started.add(pid)
        return "".join(said)

    @staticmethod
    def _start_cli(path: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "zato", "start", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @staticmethod
    def _start_all(paths: list[str], timeout: float) -> list[str]:
        """`zato start PATH` of each at once; what each printed (stdout, then stderr)."""
        from concurrent.futures import ThreadPoolExecutor

        if not paths:
            return []
        with ThreadPoolExecutor(len(paths)) as pool:
            done = list(pool.map(lambda p: zato("start", p, check=False, timeout=timeout), paths))
        failures = [
            f"zato start {p.args[-1]} exited {p.returncode}:\n{p.stdout}{p.stderr}"
            for p in done
            if p.returncode
        ]
        if failures:
            raise AssertionError("\n".join(failures))
        return [p.stdout + p.stderr for p in done]

    def stop(self, *names: str, timeout: float = 60) -> list[str]:
        names = names or tuple(self.server_names) + ("load-balancer",)
        return [zato("stop", self.member_dir(n), timeout=timeout).stdout for n in names]

    def pid(self, name: str) -> int | None:
        try:
            with open(os.path.join(self.member_dir(name), "pidfile")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def kill(self, name: str, sig: int) -> int:
        pid = self.pid(name)
        if pid is None:
            raise AssertionError(f"{name} has no pidfile")
        os.kill(pid, sig)
        return pid

    def close(self, timeout: float = 30) -> None:
        """Stop everything by pid (SIGTERM, SIGKILL after `timeout`), then clean Redis."""
        import signal

        from zato.common.pidfile import pid_alive
        from zato.lifecycle.process import send_signal

        names = list(self.server_names) + ["load-balancer", "dashboard"]
        pids = {p for p in (self.pid(n) for n in names) if p} | self._started
        for pid in pids:
            send_signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:  # each member runs in its own session: its group id is its pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        cleanup_redis(self.cluster)


def signed_headers(
    secret: str, epoch: int, service: str, body: bytes, cid: str | None = None, at: float | None = None
) -> dict:
    """Headers of an internal invoke call signed as a connector of `epoch` signs it, stamped
    `at` (epoch seconds; now by default: the test's host reads the same clock as Redis's)."""
    from zato.common.cid import new_cid
    from zato.common.signing import SIGNATURE_HEADER, STAMP_HEADER, epoch_key, new_stamp, sign

    cid = cid or new_cid()
    stamp = new_stamp(time.time() if at is None else at)
    signature = sign(epoch_key(secret, epoch), epoch, service, cid, stamp, body)
    return {"X-Zato-Epoch": str(epoch), "X-Zato-CID": cid, STAMP_HEADER: stamp, SIGNATURE_HEADER: signature}


def nested(levels: int, key: str = "a") -> dict:
    """A dict nested `levels` deep ({"a": {"a": ... {}}}), built without recursion: what a
    hostile client or another producer sends where JSON or AMQP headers are read."""
    top: dict = {}
    cur = top
    for _ in range(levels - 1):
        cur[key] = {}
        cur = cur[key]
    return top
