"""Hostile clients on a server's own port (not through the LB, which has timeouts of its own),
with a real server of one worker whose gunicorn worker_connections is small (20), so that a
few dozen sockets could take every connection it has: clients that never read their answers
(send_timeout), bodies sent a byte at a time (body_timeout), heads sent a byte at a time
(gunicorn's keepalive, 2 s). In each case /zato/ping (the
LB's health check) and a service are still answered, the hostile sockets are closed, and
server.log says so in one line."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

import pytest
import requests

from tests.integration.test_edge_flood import closed_by_peer
from tests.support import wait_for, zato

CONNECTIONS = 20  # [gunicorn] worker_connections of the one worker
ATTACKERS = 2 * CONNECTIONS
BIG = 1_000_000  # bytes of one answer of /big
SERVICE = f"""
from zato.service import Service

class Count(Service):
    name = "slow.count"

    def handle(self):
        self.response.payload = {{"size": len(self.request.raw or b"")}}


class Big(Service):
    name = "slow.big"

    def handle(self):
        self.response.payload = "x" * {BIG}
"""


@pytest.fixture(scope="module")
def qs(module_quickstart):
    limits = {"body_timeout": "2", "send_timeout": "2", "max_body": "1000"}
    gunicorn = {"worker_connections": str(CONNECTIONS)}
    cluster = module_quickstart(servers=1, extra_conf={"limits": limits, "gunicorn": gunicorn})
    cluster.start()
    cluster.deploy("slow_api", SERVICE)
    for name in ("count", "big"):
        args = ["--name", name, "--url-path", f"/{name}", "--service", f"slow.{name}"]
        zato("channel", "create", cluster.path, *args, "--data-format", "text")
    url = cluster.server_url("server1")
    wait_for(lambda: requests.get(url + "/big", timeout=5).ok, 20, what="/big")
    return cluster


def server_log(qs) -> str:
    with open(os.path.join(qs.server_dir("server1"), "logs", "server.log")) as f:
        return f.read()


def server_answers(qs) -> bool:
    """/zato/ping and a service, each on a new connection, both answered."""
    url = qs.server_url("server1")
    try:
        ping = requests.get(url + "/zato/ping", timeout=5, headers={"Connection": "close"})
        count = requests.post(url + "/count", data=b"abc", timeout=5, headers={"Connection": "close"})
    except requests.RequestException:
        return False
    return ping.json()["zato_env"]["result"] == "ZATO_OK" and count.json() == {"size": 3}


def connect(qs) -> socket.socket:
    port = int(qs.server_url("server1").rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    """A byte every half second on every socket, until `stop`."""
    while not stop.wait(0.5):
        for s in socks:
            try:  # noqa: SIM105 - the comment says why the error is expected
                s.send(b"a")
            except OSError:
                pass  # answered and closed by the server: what should happen


def test_clients_that_never_read_their_answers_are_closed_and_the_server_still_answers(qs):
    """Before: gunicorn's write of an answer to a client that did not read it waited for ever.
    40 such sockets held every connection of the worker for good: /zato/ping timed out (the
    LB would have taken the server out) for as long as the sockets stayed open."""
    before = len(server_log(qs))
    socks = []
    try:
        for _ in range(ATTACKERS):
            s = connect(qs)
            socks.append(s)
            # 30 MB of answers asked for, none read: more than the sockets' buffers hold (a
            # timeout: the server stopped reading the requests, and it has plenty of them)
            with contextlib.suppress(TimeoutError):
                s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 30)
            s.setblocking(False)
        wait_for(lambda: server_answers(qs), 90, what="/zato/ping and /count answered")
        wait_for(lambda: all(closed_by_peer(s) for s in socks), 90, what="the server closed every socket")
    finally:
        for s in socks:
            s.close()
    said = [line for line in server_log(qs)[before:].splitlines() if "took no byte of its answer" in line]
    assert len(said) == 1, said  # once a minute at most, not a line per socket
    assert "WARNING" in said[0] and "GET /big from 127.0.0.1" in said[0]
    assert "in 2 s ([limits] send_timeout); connection closed" in said[0]


def test_bodies_sent_a_byte_at_a_time_get_408_and_the_server_still_answers(qs):
    """Bodies a byte every half second, from twice as many sockets as the worker takes at
    once: each gets its 408 after body_timeout and is closed, pings and services are answered
    meanwhile. Before, the 408s were only in http_access.log: server.log said nothing of them."""
    before = len(server_log(qs))
    socks = []
    stop = threading.Event()

    try:
        for _ in range(ATTACKERS):
            s = connect(qs)
            s.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\na")
            s.setblocking(False)
            socks.append(s)
        trickler = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
        trickler.start()
        wait_for(lambda: server_answers(qs), 90, what="/zato/ping and /count answered")
        answers = {s: b"" for s in socks}

        def all_answered() -> bool:
            for s in socks:
                try:
                    while part := s.recv(65536):
                        answers[s] += part
                except BlockingIOError:
                    return False
                except OSError:
                    pass  # reset after its answer: the trickle's bytes were unread
            return True

        wait_for(all_answered, 90, what="every slow body answered and closed")
    finally:
        stop.set()
        for s in socks:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values()), {a[:40] for a in answers.values()}
    said = [line for line in server_log(qs)[before:].splitlines() if "answered 408" in line]
    assert len(said) == 1, said  # once a minute at most, not a line per socket
    assert "WARNING" in said[0] and "POST /count from 127.0.0.1 answered 408" in said[0]
    assert "did not arrive within 2 s ([limits] body_timeout); connection closed" in said[0]


def test_heads_sent_a_byte_at_a_time_are_closed_and_the_server_still_answers(qs):
    """Request heads a byte every half second (slowloris), from twice as many sockets as the
    worker takes at once: each is closed without an answer after gunicorn's keepalive (2 s,
    which times a request's head), and pings and services are answered meanwhile."""
    socks = []
    stop = threading.Event()

    try:
        for _ in range(ATTACKERS):
            s = connect(qs)
            s.sendall(b"GET /count HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            s.setblocking(False)
            socks.append(s)
        trickler = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
        trickler.start()
        wait_for(lambda: server_answers(qs), 90, what="/zato/ping and /count answered")
        wait_for(lambda: all(closed_by_peer(s) for s in socks), 90, what="the server closed every socket")
    finally:
        stop.set()
        for s in socks:
            s.close()
