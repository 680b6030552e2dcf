"""SIGKILL of a real Zato server (its whole process group) behind the LB, under steady load."""

from __future__ import annotations

import os
import signal

from tests.integration.test_lb_support import Load, states, two_servers, wait_two_up
from tests.support import wait_for


def test_sigkill_of_a_zato_server_under_load_fails_no_get(tmp_path):
    qs = two_servers(tmp_path)
    try:
        qs.start()

        wait_two_up(qs)
        with Load(qs.lb_url + "/zato/ping") as load:
            load.wait_requests(200)
            os.killpg(qs.pid("server2"), signal.SIGKILL)  # arbiter, workers and supervisor
            wait_for(lambda: not states(qs).get("server2", "DOWN").startswith("UP"), 30, what="server2 DOWN")
            load.wait_requests(300)
        assert load.failed_but_cut(victim_workers=1) == []
        wait_for(lambda: "server2" not in states(qs), 30, what="server2 removed once its key expired")
    finally:
        qs.close()


def test_a_hung_zato_server_under_load_fails_no_get(tmp_path):
    """SIGSTOP of a real server (a hung process: its host's kernel still answers TCP, so the
    LB's keep-alive probes pass): the GETs it had taken before HAProxy marked it DOWN are shut
    by the controller once it has been DOWN for HUNG_AFTER and replayed on the other server.
    None waits for `timeout server` (30 s): the load's client gives up after 10 s."""
    qs = two_servers(tmp_path)
    pid = 0
    try:
        qs.start()

        wait_two_up(qs)
        log = os.path.join(qs.lb_dir, "logs", "lb.log")
        with Load(qs.lb_url + "/zato/ping") as load:
            load.wait_requests(200)
            pid = qs.pid("server2")
            os.killpg(pid, signal.SIGSTOP)
            wait_for(
                lambda: "has failed its checks" in open(log).read(),
                30,
                what="the controller shutting server2's requests",
            )
            load.wait_requests(100)
        assert load.failed_but_cut(victim_workers=1) == []
    finally:
        if pid:
            os.killpg(pid, signal.SIGCONT)
        qs.close()
