"""A flood at the load balancer's public port, with a real HAProxy and a real server: 10,000
idle sockets and 300 clients sending one byte a second, while a steady client pings through
the LB. Every ping must be answered, and the LB must close the attackers' sockets itself
(per-address limit at once, `timeout http-request` for the rest), with lb.conf's defaults.

The attackers come from other loopback addresses (127.0.1.x, 127.0.2.x) than the pinging
client (127.0.0.1), as a flood comes from other hosts than a legitimate client."""

from __future__ import annotations

import errno
import resource
import socket
import threading
import time

import requests

from tests.support import wait_for
from zato.config.settings import EdgeSettings
from zato.lb.runtime import RuntimeAPI

IDLE = 10_000
IDLE_SOURCES = [f"127.0.1.{i}" for i in range(1, 11)]  # 1,000 sockets from each address
SLOW = 300
SLOW_SOURCES = [f"127.0.2.{i}" for i in range(1, 4)]  # 100 from each
ATTACK_SECONDS = 8.0
DEFAULTS = EdgeSettings()


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need, f"ulimit -n below {need}"


def open_sockets(port: int, count: int, sources: list[str]) -> list[socket.socket]:
    socks = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def closed_by_peer(s: socket.socket) -> bool:
    """True when the LB closed (FIN or RST) this socket; any answer it sent is read first."""
    try:
        while s.recv(65536):  # non-blocking: BlockingIOError while the socket is open and quiet
            pass
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        return e.errno in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE, errno.ENOTCONN)


class Pinger(threading.Thread):
    """/zato/ping through the LB on a new connection every 50 ms, each with a 5 s timeout."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.results = url, threading.Event(), []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                r = requests.get(self.url, timeout=5, headers={"Connection": "close"})
                self.results.append(r.status_code)
            except requests.RequestException as e:
                self.results.append(type(e).__name__)
            self.stop.wait(0.05)


def trickle(socks: list[socket.socket], until: float) -> None:
    """One byte a second on every slow socket, of a request line that never ends."""
    line = b"GET /zato/ping HTTP/1.1\r\nHost: lb\r\nX-Slow: " + b"a" * 100
    sent = 0
    while time.monotonic() < until:
        for s in socks:
            try:  # noqa: SIM105 - the comment says why the error is expected
                s.send(line[sent : sent + 1])
            except OSError:
                pass  # closed by the LB: exactly what should happen
        sent = min(sent + 1, len(line) - 1)
        time.sleep(1.0)


def test_idle_and_slow_floods_do_not_stop_pings_and_are_closed_by_the_lb(quickstart):
    raise_fd_limit(IDLE + SLOW + 1000)
    qs = quickstart(servers=1)
    qs.start()
    runtime = RuntimeAPI(qs.lb_dir + "/work/haproxy.sock")
    wait_for(lambda: requests.get(qs.lb_url + "/zato/ping", timeout=5).ok, 20, what="a ping through the LB")

    pinger = Pinger(qs.lb_url + "/zato/ping")
    pinger.start()
    idle = slow = []
    try:
        idle = open_sockets(qs.lb_port, IDLE, IDLE_SOURCES)
        slow = open_sockets(qs.lb_port, SLOW, SLOW_SOURCES)
        until = time.monotonic() + ATTACK_SECONDS
        trickler = threading.Thread(target=trickle, args=(slow, until), daemon=True)
        trickler.start()
        held = 0
        while time.monotonic() < until:  # the flood is real: HAProxy holds thousands of them
            held = max(held, int(runtime.info().get("CurrConns", 0)))
            time.sleep(0.5)
        trickler.join()
        pinger.stop.set()
        pinger.join(10)

        answered = [r for r in pinger.results if r == 200]
        assert len(pinger.results) >= 20 and answered == pinger.results, pinger.results
        assert held >= len(IDLE_SOURCES) * DEFAULTS.max_conn_per_source
        # Every attacking socket is closed by the LB within its timeouts (the slow ones get a 408).
        wait_for(lambda: all(closed_by_peer(s) for s in idle + slow), 15, what="the LB closed every socket")
    finally:
        pinger.stop.set()
        for s in idle + slow:
            s.close()
    assert requests.get(qs.lb_url + "/zato/ping", timeout=5).ok
