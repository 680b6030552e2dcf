"""A component whose folder (or its logs/ folder) is deleted or renamed while it runs still stops
when told to, leaving no process behind.

Before: the log handler reopened its file (moved away, as logrotate does) outside logging's
own error handling, so the first log line after the folder went raised FileNotFoundError in
the thread that logged. A server's drain thread died on its first line ("graceful stop of
server ..."), gunicorn never got the signal, and the server served on: `zato stop` killed it
after its timeout, and a SIGTERM alone never stopped it. The load balancer's controller
crashed on its next line (its HAProxy stopped with it), every request that a server
wrote an access line for had its connection closed unanswered, and the dashboard answered a
failed login with a 500 (its warning raised)."""

from __future__ import annotations

import os
import shutil
import signal

import requests

from tests.support import process_table, wait_for, zato
from zato.common.pidfile import pid_alive

MODULE = """
from zato.service import Service


class Echo(Service):
    name = "gone.echo"

    def handle(self):
        self.logger.info("echo served")
        self.response.payload = {"served": "yes"}
"""


def tree(pid: int) -> set[int]:
    """`pid` and every process descended from it."""
    rows = process_table()
    found, new = set(), {pid}
    while new:
        found |= new
        new = {p for p, ppid, _cmd in rows if ppid in new} - found
    return found


def running(qs) -> tuple[int, set[int]]:  # noqa: ANN001 - a Quickstart
    """server1's arbiter and its whole tree (workers, the connector supervisor), once all are up
    (the supervisor and its connector zygote have their log open: one starting after the folder
    went would make it anew)."""
    pid = qs.pid("server1")
    assert pid and pid_alive(pid)
    wait_for(lambda: "connector zygote ready" in qs.server_logs(), 60, what="server1's connector zygote")
    wait_for(lambda: len(tree(pid)) >= 3, 60, what="server1's worker and connector supervisor")
    return pid, tree(pid)


def gone(pids: set[int]) -> bool:
    return not any(pid_alive(p) for p in pids)


def test_a_server_whose_logs_folder_is_deleted_serves_and_stops(quickstart):
    qs = quickstart(servers=1, lb=False)
    qs.start()
    qs.deploy("gonemod", MODULE)
    qs.open_channels("gone", ["echo"])
    url = f"{qs.server_url('server1')}/gone/echo"
    wait_for(lambda: requests.get(url, timeout=5).ok, 30, what="the channel served")
    pid, processes = running(qs)

    shutil.rmtree(os.path.join(qs.server_dir("server1"), "logs"))
    for _ in range(3):  # its service logs a line, and the server its access line
        r = requests.get(url, timeout=10)
        assert (r.status_code, r.json()) == (200, {"served": "yes"})
    out = zato("stop", qs.server_dir("server1")).stdout
    assert out.strip() == f"server server1 stopped (pid {pid})"
    wait_for(lambda: gone(processes), 60, what="every process of server1 gone")


def test_a_server_whose_folder_is_renamed_stops(quickstart, tmp_path):
    qs = quickstart(servers=1, lb=False)
    qs.start()
    pid, processes = running(qs)

    moved = str(tmp_path / "moved-server1")
    os.rename(qs.server_dir("server1"), moved)
    out = zato("stop", moved).stdout  # the arbiter found by its title (the cluster and name)
    assert out.strip() == f"server server1 stopped (pid {pid})"  # its name, not its folder's
    wait_for(lambda: gone(processes), 60, what="every process of server1 gone")
    with open(os.path.join(moved, "logs", "server.log")) as f:  # the file it had open, moved along
        log = f.read()
    assert "graceful stop of server server1" in log and "server server1 stopped" in log


def test_a_server_whose_folder_is_deleted_stops_on_sigterm(quickstart):
    qs = quickstart(servers=1, lb=False)
    qs.start()
    pid, processes = running(qs)

    shutil.rmtree(qs.server_dir("server1"))
    os.kill(pid, signal.SIGTERM)  # no pidfile left for `zato stop`: what a user does by hand
    wait_for(lambda: gone(processes), 90, what="every process of server1 gone after SIGTERM")


def test_a_load_balancer_whose_logs_folder_is_deleted_serves_and_stops(quickstart):
    qs = quickstart(servers=1)
    qs.start()
    pid = qs.pid("load-balancer")
    haproxy = wait_for(lambda: {p for p in tree(pid) if p != pid}, 30, what="the LB's HAProxy")
    processes = tree(pid)
    assert haproxy

    shutil.rmtree(os.path.join(qs.lb_dir, "logs"))
    zato("stop", qs.server_dir("server1"))  # a member leaves: the controller logs it and drains it
    ping = f"{qs.lb_url}/zato/ping"
    wait_for(lambda: requests.get(ping, timeout=5).status_code == 503, 60, what="the LB left with no server")
    assert pid_alive(pid), "the load balancer's controller ended"
    out = zato("stop", qs.lb_dir).stdout
    assert out.strip() == f"load balancer stopped (pid {pid})"
    wait_for(lambda: gone(processes), 60, what="the controller and its HAProxy gone")


def test_a_dashboard_whose_logs_folder_is_deleted_answers_and_stops(quickstart):
    from zato.config.settings import load_dashboard_settings

    qs = quickstart(servers=1, lb=False)
    qs.start()
    zato("start", qs.dashboard_dir)
    pid = qs.pid("dashboard")
    qs._started.add(pid)
    url = load_dashboard_settings(qs.dashboard_dir).url

    shutil.rmtree(os.path.join(qs.dashboard_dir, "logs"))
    r = requests.post(f"{url}login", data={"username": "admin", "password": "wrong"}, timeout=10)
    assert r.status_code == 401 and "Wrong user or password." in r.text  # said in its log, which is gone
    out = zato("stop", qs.dashboard_dir).stdout
    assert out.strip() == f"dashboard stopped (pid {pid})"
    wait_for(lambda: not pid_alive(pid), 60, what="the dashboard gone")
