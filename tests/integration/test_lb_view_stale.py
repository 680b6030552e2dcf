"""A load balancer that dies without stopping cleanly (SIGKILL of its controller and HAProxy)
leaves its view in Redis: a server stopped later must not wait its whole drain bound for it.
Before, the dead LB's view listed the server for ever and every stop of it waited all of
[main] drain_seconds ("drain bound of 60.0 s reached; still served by HOST:PORT")."""

from __future__ import annotations

import contextlib
import os
import signal
import socket

from tests.support import Quickstart, cluster_name, free_port, wait_for, zato
from zato.common.pidfile import pid_alive
from zato.lb.status import describe

CONF = {"lb:haproxy": {"check_inter_ms": 300}, "main": {"drain_seconds": 60}}


def serving(lb_dir: str) -> set[str]:
    return {s["name"] for s in describe(lb_dir)["servers"] if s["state"].startswith("UP")}


def test_a_killed_lbs_view_is_ignored_and_named_and_the_drain_ends_with_the_live_lb(tmp_path):
    qs = Quickstart(tmp_path, servers=1, cluster=cluster_name("lbviews"), extra_conf=CONF).create()
    lb2_dir, lb2_port = os.path.join(qs.path, "load-balancer-2"), free_port()
    zato("create", "load-balancer", lb2_dir, "--join", qs.server_dir("server1"), "--port", str(lb2_port))
    lb2_pids: list[int] = []
    try:
        qs.start()
        zato("start", lb2_dir)
        lb2 = describe(lb2_dir)
        lb2_pids = [lb2["controller"]["pid"], lb2["haproxy"]["pid"]]
        for lb_dir in (qs.lb_dir, lb2_dir):
            wait_for(lambda d=lb_dir: serving(d) == {"server1"}, 30, what=f"server1 UP in {lb_dir}")

        for pid in lb2_pids:  # no clean stop: its view stays in Redis
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(pid_alive(p) for p in lb2_pids), 10, what="the second LB gone")

        out = zato("stop", qs.server_dir("server1"), timeout=180).stdout
        assert out.startswith("server server1 stopped"), out
        with open(os.path.join(qs.server_dir("server1"), "logs", "server.log")) as f:
            log = f.read()
        dead = f"{socket.gethostname()}:{lb2_port}"
        # The live LB dropped it: the drain ended there, not at the 60 s bound.
        assert "drained by 1 load balancer(s)" in log, log[-3000:]
        assert "drain bound of 60.0 s reached" not in log
        # And the operator is told which view was ignored, and why.
        assert f"ignoring the view of load balancer {dead}: not refreshed for over" in log, log[-3000:]
    finally:
        for pid in lb2_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        zato("stop", qs.path, check=False)
        qs.close()
