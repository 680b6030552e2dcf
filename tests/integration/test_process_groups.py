"""What `zato start` and `zato stop` kill when a server's worker hangs: every process of that
server and nothing else. A start that fails cleans up after itself; a server run with
`zato start --fg` in a shell pipeline is stopped without the commands it writes to; a server
told to stop as it starts stops at once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.integration.test_server_cli import set_conf_of
from tests.support import cluster_name, free_port, process_table, wait_for, zato
from zato.common.pidfile import pid_alive
from zato.lifecycle.control import http_ok, ready_url


def workers_of(arbiter: int) -> list[int]:
    return [pid for pid, ppid, cmd in process_table() if ppid == arbiter and b"gunicorn: worker" in cmd]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def hang_a_worker(qs) -> tuple[int, int]:  # noqa: ANN001 - a Quickstart
    """SIGSTOP one worker of server1 as soon as it is forked: it never stops by itself (as one
    blocked in a system call or deadlocked). (arbiter pid, worker pid)."""
    arbiter = wait_for(lambda: qs.pid("server1"), 60, what="server1's pidfile")
    worker = wait_for(lambda: workers_of(arbiter), 60, what="a worker of server1")[0]
    os.kill(worker, signal.SIGSTOP)
    return arbiter, worker


def test_a_failed_start_leaves_no_process_of_the_server_behind_when_a_worker_hangs(quickstart):
    """Before, the failed start's clean-up SIGKILLed the arbiter alone after 30 s: the hung worker
    lived on, orphaned, listening on the port the server had bound. The clean-up gives the
    server --stop-timeout (3 s here, 30 by default) before it kills the server and its workers."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("life"))
    elsewhere = free_port()
    set_conf_of(qs, "server1", "gunicorn", "bind", f"127.0.0.1:{elsewhere}")  # never ready where looked for
    set_conf_of(qs, "server1", "gunicorn", "graceful_timeout", "120")  # the arbiter waits on the worker
    start = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zato",
            "start",
            qs.server_dir("server1"),
            "--timeout",
            "10",
            "--stop-timeout",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    arbiter = worker = 0
    try:
        arbiter, worker = hang_a_worker(qs)
        out, err = start.communicate(timeout=120)
        assert start.returncode == 1 and "server server1 did not become ready within 10 s" in err, err
        assert f"server server1 did not stop in time and was killed (pid {arbiter}): this start failed" in out
        assert not pid_alive(arbiter), f"the arbiter {arbiter} still runs"
        assert not pid_alive(worker), f"the hung worker {worker} still runs"
        assert not listening(elsewhere)
        assert qs.pid("server1") is None
    finally:
        start.kill()
        start.wait()
        for pid in (worker, arbiter):  # what is left of it, when this test fails
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("job_control", [True, False], ids=["interactive-shell", "script"])
def test_zato_stop_of_a_foreground_server_kills_it_and_its_workers_not_its_pipeline(
    quickstart, tmp_path, job_control
):
    """`zato start DIR --fg | cat`, then `zato stop DIR` killing it (a worker hangs). In a shell
    with job control the server leads the pipeline's process group, `cat` in it: before, the
    group was killed, `cat` too (137), before it had written what it had read. In a script the
    server leads no group: before, only its arbiter was killed; the hung worker lived on, holding
    the pipe, so `cat` and the script never ended. Now both: the server and its workers are
    killed; `cat` ends by itself once its input closes (0)."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("life"))
    server, log = qs.server_dir("server1"), tmp_path / "fg.log"
    script = (
        "set -m; " if job_control else ""
    ) + f"{sys.executable} -m zato start {server} --fg 2>&1 | cat > {log}; echo statuses ${{PIPESTATUS[*]}}"
    # its own session: without job control the pipeline is in bash's group, not in pytest's
    shell = subprocess.Popen(
        ["bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    arbiter = worker = 0
    try:
        wait_for(lambda: http_ok(ready_url(qs.settings("server1"))), 60, what="server1 ready")
        arbiter, worker = hang_a_worker(qs)
        out = zato("stop", server, "--timeout", "3").stdout
        assert f"server server1 did not stop in time and was killed (pid {arbiter})" in out, out
        said, _ = shell.communicate(timeout=30)
        assert said.strip() == "statuses 137 0", said  # the server killed; cat ended by itself
        assert "server1" in log.read_text()  # what the server wrote went through cat
        assert not pid_alive(worker), f"the hung worker {worker} still runs"
        assert not listening(qs.settings("server1").port)
    finally:
        for pid in (worker, arbiter):  # what is left of it, when this test fails
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


def test_a_server_told_to_stop_as_it_starts_stops_at_once(quickstart):
    """SIGTERM as soon as the server's pidfile names it (systemd stopping it right after its
    start, `zato stop` while `zato start` waits): before, a worker forked meanwhile ran the
    arbiter's handler and lost the signal, and the arbiter waited for it the whole
    graceful_timeout (30 s by default) before killing it; `zato stop` gave up first and said
    'did not stop in time and was killed'."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("life"))
    set_conf_of(qs, "server1", "gunicorn", "graceful_timeout", "300")
    server = subprocess.Popen(
        [sys.executable, "-m", "zato.server.main", qs.server_dir("server1")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: qs.pid("server1") == server.pid, 60, interval=0.001, what="server1's pidfile")
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail("the server told to stop as it started still runs after 60 s")
        with pytest.raises(ProcessLookupError):  # nothing of it is left either
            os.killpg(server.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
