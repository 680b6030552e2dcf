"""Helpers for the load-balancer tests and bench/lb (no tests here).

A "bare server" is a real gevent WSGI process answering /zato/ping like a Zato server,
with a heartbeat thread in the test process announcing it in Redis the way a server's
supervisor does. It lets the LB be tested against real processes on free ports.
"""

from __future__ import annotations

import atexit
import configparser
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import pytest
import redis
import requests

from tests.support import REDIS_URL, Quickstart, cleanup_redis, cluster_name, free_port, wait_for
from zato.common.pidfile import pid_alive
from zato.coord.membership import Member, announce, publish_change, withdraw
from zato.coord.signing import member_key
from zato.lb.controller import servers_in_file
from zato.lb.status import describe

PASSWORD = "s3cret st#ts'\"\\$x:y"

PING_APP = """
import os
from zato.common.cid import new_cid

HEAD = b'{"zato_env": {"details": "", "result": "ZATO_OK", "cid": "'
TAIL = b'"}, "zato_ping_response": {"pong": "zato"}, "pid": %d}' % os.getpid()


def app(environ, start_response):
    cid = new_cid()
    body = HEAD + cid.encode() + TAIL
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Zato-CID", cid),
                              ("Content-Length", str(len(body)))])
    return [body]
"""

SECRET = "the LB tests' cluster secret"
LB_CONF = """[main]
host = 127.0.0.1
port = {port}
[cluster]
name = {cluster}
[kvdb]
url = {redis_url}
[stats]
username = admin
password = {password}
[auth]
cluster_secret = {secret}
[haproxy]
check_inter_ms = 300
[logging]
level = INFO
"""

# gevent's own WSGI server, lighter than gunicorn for the many bare servers the LB tests start
# (bench/lb compares against gunicorn + gevent). Both send a response's head and its body in
# two sends (gevent.pywsgi: "we may make an extra syscall"), so a server SIGKILLed between the
# two leaves a response HAProxy has already started forwarding, which no retry can save:
# tests that kill a server under load allow that once per process (Load.failed_but_cut).
PYWSGI_MAIN = """
from gevent import monkey; monkey.patch_all()
import signal, sys
import gevent
from gevent.pywsgi import WSGIServer
from zato_bare_ping import app
server = WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None)
gevent.signal_handler(signal.SIGTERM, lambda: gevent.spawn(server.stop, 5))
server.serve_forever()
"""

_app_dir = tempfile.mkdtemp(prefix="zato-lb-app-")
atexit.register(shutil.rmtree, _app_dir, True)
for _name, _text in (("zato_bare_ping.py", PING_APP), ("zato_bare_pywsgi.py", PYWSGI_MAIN)):
    with open(os.path.join(_app_dir, _name), "w") as _f:
        _f.write(_text)


def start_bare_app(port: int, workers: int = 1, gunicorn: bool = False) -> subprocess.Popen:
    """A gevent WSGI server (or gunicorn + gevent with `workers`) serving PING_APP on
    127.0.0.1:port, in its own process group."""
    if gunicorn:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gevent",
            "-w",
            str(workers),
            "--graceful-timeout",
            "5",
        ]
        argv += ["-b", f"127.0.0.1:{port}", "--chdir", _app_dir, "zato_bare_ping:app"]
    else:
        argv = [sys.executable, os.path.join(_app_dir, "zato_bare_pywsgi.py"), str(port)]
    out = subprocess.DEVNULL
    return subprocess.Popen(argv, stdout=out, stderr=out, cwd=_app_dir, start_new_session=True)


@dataclass
class BareServer:
    """A bare app plus a membership heartbeat (like a server's supervisor)."""

    cluster: str
    name: str
    port: int = field(default_factory=free_port)
    ttl: float = 1.5
    proc: subprocess.Popen | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _stop_heartbeat(self) -> None:
        """Stop the heartbeat and wait for it, so no refresh can follow a withdraw."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def start(self, announce_it: bool = True) -> BareServer:
        self.proc = start_bare_app(self.port)
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{self.port}/zato/ping", timeout=1).ok, 30, what="bare app"
        )
        if announce_it:
            self.join()
        return self

    def join(self) -> None:
        """Announce the server (and keep announcing it) as a server's supervisor does."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        member = Member(self.name, "127.0.0.1", self.port, self.proc.pid, time.time())
        key = member_key(SECRET, self.cluster)
        announce(client, self.cluster, member, self.ttl, key)
        publish_change(client, self.cluster, self.name, "joined")
        while not self._stop.wait(self.ttl / 3):
            announce(client, self.cluster, member, self.ttl, key)
        client.close()

    def withdraw(self) -> None:
        self._stop_heartbeat()
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        withdraw(client, self.cluster, self.name)
        publish_change(client, self.cluster, self.name, "left")
        client.close()

    def stop_gracefully(self, drain: float = 1.0) -> None:
        """What a Zato server does on SIGTERM: withdraw, keep serving `drain` s, stop."""
        self.withdraw()
        time.sleep(drain)
        self.terminate()

    def kill(self) -> None:
        """SIGKILL the whole process group and stop the heartbeat, like a host crash."""
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# How requests reports a response whose head came and whose body did not (0 bytes of it).
CUT_HEAD = "ChunkedEncodingError: ('Connection broken: IncompleteRead(0 bytes read"


class Load:
    """A bounded GET loop in a few threads (keep-alive sessions), counting failures."""

    def __init__(self, url: str, threads: int = 3):
        self.url = url
        self.threads = threads
        self.ok = 0
        self.failed: list[str] = []
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def _run(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + 300  # bounded even if a test forgets to stop it
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                resp = session.get(self.url, timeout=10)
                ok, why = resp.status_code == 200, f"HTTP {resp.status_code}"
                pid = resp.json().get("pid") if ok else None
            except (requests.RequestException, ValueError) as e:
                ok, why, pid = False, f"{type(e).__name__}: {e}", None
            with self._lock:
                if ok:
                    self.ok += 1
                    if pid:
                        self.pids.add(pid)
                else:
                    self.failed.append(why)

    def wait_requests(self, n: int, timeout: float = 30) -> None:
        start = self.ok
        wait_for(lambda: self.ok >= start + n, timeout, what=f"{n} more successful requests")

    def failed_but_cut(self, victim_workers: int) -> list[str]:
        """The failures, less the responses a server froze or died in the middle of: gunicorn
        writes a response's head and its body in two sends, so a server stopped (SIGSTOP) or
        killed between them has sent a head HAProxy already forwarded, and nothing can replay
        it (docs/multi-host.md, Known limits). Each worker process of the victim can be between
        those two sends for one response at most (no greenlet switch between them), so more
        cut responses than `victim_workers` are failures too."""
        cut = [why for why in self.failed if why.startswith(CUT_HEAD)]
        if len(cut) > victim_workers:
            return self.failed
        return [why for why in self.failed if not why.startswith(CUT_HEAD)]


def write_lb_dir(path: str, cluster: str, port: int, password: str = PASSWORD) -> str:
    """A load-balancer directory like `zato create load-balancer` makes."""
    from zato.config.component import LOAD_BALANCER, write_marker

    write_marker(path, LOAD_BALANCER)
    for sub in ("config", "logs", "work"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    with open(os.path.join(path, "config", "lb.conf"), "w") as f:
        f.write(
            LB_CONF.format(port=port, cluster=cluster, redis_url=REDIS_URL, password=password, secret=SECRET)
        )
    return path


def set_conf(path: str, section: str, key: str, value: str) -> None:
    """Set one value in an INI file (lb.conf)."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    if not cp.has_section(section):
        cp.add_section(section)
    cp.set(section, key, value)
    with open(path, "w") as f:
        cp.write(f)


class Controller:
    """`python -m zato.lb.main LB_DIR` as a child of the test, stopped by its pid."""

    def __init__(self, lb_dir: str, port: int, cluster: str = ""):
        self.lb_dir = lb_dir
        self.port = port
        self.cluster = cluster
        self.servers: list[BareServer] = []  # stopped by the test's clean-up
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Controller:
        log = open(os.path.join(self.lb_dir, "logs", "controller.out"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zato.lb.main", self.lb_dir],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_for(lambda: requests.get(self.url + "/zato-lb-alive", timeout=1).ok, 30, what="LB alive")
        return self

    def haproxy_pid(self) -> int:
        with open(os.path.join(self.lb_dir, "work", "haproxy.pid")) as f:
            return int(f.read().strip())

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM the controller (it stops HAProxy) and make sure HAProxy is gone too."""
        try:
            hp = self.haproxy_pid()
        except (OSError, ValueError):
            hp = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hp and pid_alive(hp):
            os.kill(hp, signal.SIGKILL)


@pytest.fixture(name="lb")
def lb_fixture(tmp_path):
    cluster = cluster_name("lb")
    port = free_port()
    controller = Controller(write_lb_dir(str(tmp_path / "lb"), cluster, port, PASSWORD), port, cluster)
    yield controller
    for server in controller.servers:
        server.terminate()
    controller.stop()
    cleanup_redis(cluster)


def add_server(lb: Controller, name: str, port: int | None = None) -> BareServer:
    server = BareServer(lb.cluster, name, port or free_port()).start()
    lb.servers.append(server)
    return server


def backend_pids(lb: Controller, n: int = 8) -> set[int]:
    return {requests.get(lb.url + "/zato/ping", timeout=5).json().get("pid") for _ in range(n)}


def servers_on_disk(lb: Controller) -> set[str]:
    with open(os.path.join(lb.lb_dir, "config", "haproxy.cfg")) as f:
        return {b.name for b in servers_in_file(f.read())}


def two_servers(tmp_path) -> Quickstart:  # noqa: ANN001
    """A quickstart of two servers behind its LB, health-checked every 300 ms."""
    return Quickstart(tmp_path, servers=2, extra_conf={"lb:haproxy": {"check_inter_ms": 300}}).create()


def states(qs: Quickstart) -> dict[str, str]:
    """Each server's state as the LB's HAProxy shows it."""
    return {s["name"]: s["state"] for s in describe(qs.lb_dir)["servers"]}


def wait_two_up(qs: Quickstart) -> None:
    wait_for(lambda: all(v.startswith("UP") for v in states(qs).values()) and len(states(qs)) == 2, 30)
