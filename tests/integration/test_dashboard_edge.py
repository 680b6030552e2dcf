"""The dashboard's port against slow and hostile clients, and its files: a real dashboard
started with `zato start`, raw sockets trickling requests (as docs/edge.md does for the LB)."""

from __future__ import annotations

import os
import resource
import socket
import stat
import subprocess
import sys
import time

import requests

from tests.support import wait_for


def dashboard_url(qs) -> str:  # noqa: ANN001 - a Quickstart
    return f"http://127.0.0.1:{qs.dashboard_port}/"


def start_dashboard(qs, open_files: int | None = None) -> None:  # noqa: ANN001 - a Quickstart
    """`zato start` of the quickstart's dashboard; with `open_files`, under that soft limit."""

    def limit() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    proc = subprocess.run(
        [sys.executable, "-m", "zato", "start", qs.dashboard_dir],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,  # noqa: PLW1509 - only setrlimit, before exec
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: requests.get(dashboard_url(qs) + "login", timeout=5).ok, 30, what="the dashboard")


def connect(qs, head: bytes) -> socket.socket:  # noqa: ANN001
    sock = socket.create_connection(("127.0.0.1", qs.dashboard_port), timeout=30)
    sock.sendall(head)
    return sock


def answer_and_close(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """What the dashboard sent before it closed the connection, and after how many seconds;
    AssertionError if it is still open after `within` s (a byte a second trickles meanwhile)."""
    started, got = time.monotonic(), b""
    sock.settimeout(1.0)
    while time.monotonic() - started < within:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            try:
                sock.sendall(b"a")  # one more byte of the header, or of the body
            except OSError:
                break
            continue
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    else:
        raise AssertionError(f"the connection is still open after {within} s (got {got!r})")
    sock.close()
    return got, time.monotonic() - started


def test_slow_request_headers_and_body_get_408_and_are_closed(quickstart):
    qs = quickstart(servers=1, lb=False)
    start_dashboard(qs)

    head = connect(qs, b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # a byte a second after this
    got, took = answer_and_close(head, 15)
    assert got.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and took < 8, (got, took)

    body = connect(qs, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nusername=")
    got, took = answer_and_close(body, 20)
    assert got.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and took < 13, (got, took)

    idle = connect(qs, b"")  # a connection that never starts a request is closed, quietly
    idle.settimeout(15)
    assert idle.recv(10) == b""
    idle.close()

    # A client that keeps up is served as before, also on a kept-alive connection.
    with requests.Session() as http:
        assert [http.get(dashboard_url(qs) + "login", timeout=5).status_code for _ in range(3)] == [200] * 3
    log = open(os.path.join(qs.dashboard_dir, "logs", "dashboard.log")).read()
    assert "its request headers did not arrive within 5 s" in log
    assert "Traceback" not in log


def test_a_flood_of_trickling_connections_neither_holds_nor_breaks_the_dashboard(quickstart):
    """Under a 256 open-files limit, 400 connections that send part of their headers: each is
    closed by the dashboard, a client that comes afterwards is served, and the logs hold no
    "Too many open files" traceback."""
    qs = quickstart(servers=1, lb=False)
    start_dashboard(qs, open_files=256)
    flood = [connect(qs, b"GET /login HTTP/1.1\r\nHost: x\r\n") for _ in range(400)]
    deadline = time.monotonic() + 60
    for sock in flood:  # every one closed by the dashboard (an answer, then EOF)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError("a trickling connection is still open after 60 s") from None
        sock.close()
    assert requests.get(dashboard_url(qs) + "login", timeout=10).status_code == 200
    logs = os.path.join(qs.dashboard_dir, "logs")
    stdout = open(os.path.join(logs, "stdout.log")).read()
    log = open(os.path.join(logs, "dashboard.log")).read()
    assert "Too many open files" not in stdout and "Traceback" not in stdout, stdout[-2000:]
    assert "Traceback" not in log
    assert log.count("did not arrive within") <= 2  # one line a minute, not one a connection


def test_config_and_logs_are_owner_only_also_when_an_older_version_left_them_open(quickstart):
    qs = quickstart(servers=1, lb=False)
    config, logs = (os.path.join(qs.dashboard_dir, sub) for sub in ("config", "logs"))
    # as `zato quickstart create` made them (before: 0755 until the dashboard's first start)
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in (config, logs)} == {0o700}
    logfile = os.path.join(logs, "dashboard.log")
    for folder in (config, logs):  # as an older version left them
        os.chmod(folder, 0o755)  # noqa: S103 - what is tested is that it is made private
    with open(logfile, "w") as f:
        f.write("an older version's line\n")
    os.chmod(logfile, 0o644)
    start_dashboard(qs)
    mode = {p: stat.S_IMODE(os.stat(p).st_mode) for p in (config, logs, logfile)}
    assert mode == {config: 0o700, logs: 0o700, logfile: 0o600}
    assert stat.S_IMODE(os.stat(os.path.join(logs, "stdout.log")).st_mode) == 0o600
