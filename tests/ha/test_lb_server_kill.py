"""SIGKILL of a real Zato server (its whole process group) behind the LB, under steady load."""

from __future__ import annotations

import os
import signal

from tests.integration.test_lb_support import Load
from tests.support import Quickstart, wait_for
from zato.lb.status import describe


def test_sigkill_of_a_zato_server_under_load_fails_no_get(tmp_path):
    qs = Quickstart(tmp_path, servers=2, extra_conf={"lb:haproxy": {"check_inter_ms": 300}}).create()
    try:
        qs.start()

        def states() -> dict[str, str]:
            return {s["name"]: s["state"] for s in describe(qs.lb_dir)["servers"]}

        wait_for(lambda: all(v.startswith("UP") for v in states().values()) and len(states()) == 2, 30)
        with Load(qs.lb_url + "/zato/ping") as load:
            load.wait_requests(200)
            os.killpg(qs.pid("server2"), signal.SIGKILL)  # arbiter, workers and supervisor
            wait_for(lambda: not states().get("server2", "DOWN").startswith("UP"), 30, what="server2 DOWN")
            load.wait_requests(300)
        assert load.failed == []
        wait_for(lambda: "server2" not in states(), 30, what="server2 removed once its key expired")
    finally:
        qs.close()
