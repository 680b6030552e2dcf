"""Outgoing HTTP connections (`self.out.rest[name].conn.get(self.cid)`, Zato's own calls) to
remotes that misbehave, served by a real HTTP server of the test's own, called by a service on
a real server:

- a remote that sends its answer a byte at a time (its headers, or its body) keeps no call
  past the connection's `--timeout` ("seconds a call may take"): the service gets a
  ConnectorError saying so. Before, requests' timeout was per read, so each byte began the
  wait anew and the call, with its client's request, hung for as long as the remote went on;
- an answer larger than server.conf's `[limits] max_outgoing_body` is refused, from its
  Content-Length or while read (chunked): before, any body was read whole into the worker's
  memory (a 3 GB one took 10 GB and the worker was killed with every request it served)."""

from __future__ import annotations

import socket
import threading
import time

import requests

from tests.support import free_port, wait_for, zato

MODULE = """
from zato.server.service import Service


class Get(Service):
    name = "remote.get"

    def handle(self):
        response = self.out.rest[self.request.http.GET["conn"]].conn.get(self.cid)
        self.response.payload = {"status": response.status_code, "size": len(response.text)}
"""

BIG = 5 * 1024 * 1024  # bytes, over the 1 MiB max_outgoing_body of the cluster below


class Remote:
    """A plain socket HTTP server answering by path: /slow-body (a byte every 0.3 s of a
    100,000-byte body), /slow-head (its headers a byte at a time), /big (Content-Length BIG),
    /big-chunked (BIG bytes, chunked), /small (200 "ok")."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    got = conn.recv(4096)
                    if not got:
                        return
                    head += got
                path = head.split(b" ", 2)[1]
                if path == b"/slow-body":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    self._dribble(conn, b"x" * 100000)
                elif path == b"/slow-head":
                    self._dribble(conn, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000)
                elif path == b"/big":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * BIG)
                elif path == b"/big-chunked":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    chunk = b"x" * 65536
                    for _ in range(BIG // len(chunk)):
                        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    conn.sendall(b"0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except OSError:
                pass  # the caller gave up on it

    def _dribble(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.is_set():
                return
            conn.sendall(data[i : i + 1])
            time.sleep(0.3)


def test_a_slow_or_huge_answer_ends_the_call(quickstart):
    remote = Remote()
    try:
        qs = quickstart(servers=1, workers=1, extra_conf={"limits": {"max_outgoing_body": 1024 * 1024}})
        qs.start()
        qs.deploy("remote_get", MODULE)
        zato("channel", "create", qs.path, "--name", "get", "--url-path", "/remote/get",
             "--service", "remote.get")  # fmt: skip
        for path in ("slow-body", "slow-head", "big", "big-chunked", "small"):
            zato("conn", "create", "http-outgoing", qs.path, "--name", path, "--address",
                 f"http://127.0.0.1:{remote.port}", "--url-path", f"/{path}", "--timeout", "2")  # fmt: skip
        base = qs.server_url("server1") + "/remote/get?conn="
        wait_for(lambda: requests.get(base + "small", timeout=10).status_code == 200, 30, what="remote.get")
        assert requests.get(base + "small", timeout=10).json() == {"status": 200, "size": 2}

        for path in ("slow-body", "slow-head"):
            # the call ends at the connection's 2 s; the client's 60 s is there only to see it end
            answer = requests.get(base + path, timeout=60)
            assert answer.status_code == 500, answer.text
            url = f"http://127.0.0.1:{remote.port}/{path}"
            said = f"outgoing HTTP '{path}': GET {url}: no whole answer within 2 s"
            wait_for(lambda said=said: said in qs.server_logs(), 10, what=said)

        for path in ("big", "big-chunked"):
            answer = requests.get(base + path, timeout=60)
            assert answer.status_code == 500, answer.text
            url = f"http://127.0.0.1:{remote.port}/{path}"
            said = (
                f"outgoing HTTP '{path}': GET {url}: the answer's body is over"
                " 1048576 bytes, the most an outgoing HTTP answer may have ([limits] max_outgoing_body"
            )
            wait_for(lambda said=said: said in qs.server_logs(), 10, what=said)

        # the worker that refused them serves on, its connection to the remote too
        assert requests.get(base + "small", timeout=10).json() == {"status": 200, "size": 2}
        assert "ended with" not in qs.server_logs()  # no worker died
    finally:
        remote.close()
