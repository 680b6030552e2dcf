"""`zato cluster status` and a server.conf whose [lease] handover_after is not the default.

Before, the status called a connector reconnecting a problem (exit 3) after a fixed 10 s,
whatever handover_after said, while the holder hands the lease over only after its own
setting: with handover_after = 30, a connector 12 s into a broker's absence was a problem the
holder was not yet acting on. Now the holder's supervisor publishes its handover_after with its
status, and the problem line comes from that on, naming it. A real server, and an AMQP
connection to a port nobody listens on."""

from __future__ import annotations

import json
from typing import Any

from tests.support import free_port, wait_for, zato

HANDOVER_AFTER = 30
NAME = "amqp-channel:orders"


def _status(path: str) -> dict:
    proc = zato("cluster", "status", path, "--json", check=False)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _when(path: str, lo: int, hi: int) -> dict | None:
    """The status once the connector has been reconnecting for lo..hi-1 s, else None."""
    data = _status(path)
    return data if lo <= _reconnecting_for(data) < hi else None


def _reconnecting_for(data: dict) -> int:
    child = next((c for c in data["children"] if c["name"] == NAME), {})
    return (child.get("activity_for") or 0) if child.get("activity") == "reconnecting" else 0


def test_a_reconnecting_connector_is_a_problem_from_the_holders_handover_after(quickstart):
    conf = {"lease": {"handover_after": str(HANDOVER_AFTER), "yield_for": str(2 * HANDOVER_AFTER)}}
    qs = quickstart(servers=1, lb=False, extra_conf=conf)
    qs.start()
    zato("conn", "create", "amqp-def", qs.path, "--name", "nowhere", "--password", "guest",
         "--port", str(free_port()))  # fmt: skip
    zato("conn", "create", "amqp-channel", qs.path, "--name", "orders", "--def", "nowhere",
         "--queue", "zt-sha-orders", "--service", "demo.ping")  # fmt: skip

    early: Any = wait_for(lambda: _when(qs.path, 12, HANDOVER_AFTER), 120, interval=1,
                     what="the connector reconnecting for 12 s or more")  # fmt: skip
    said = [p for p in early["problems"] if "has been reconnecting" in p]
    assert said == [], said  # before: "connector ... has been reconnecting for 12 s, ..." (10 s on)
    assert early["supervisor"]["handover_after"] == HANDOVER_AFTER, early["supervisor"]

    late: Any = wait_for(lambda: _when(qs.path, HANDOVER_AFTER, 10**6), 120, interval=1,
                    what=f"the connector reconnecting for {HANDOVER_AFTER} s or more")  # fmt: skip
    (problem,) = [p for p in late["problems"] if "has been reconnecting" in p]
    assert problem.startswith(f"connector {NAME} on server1 has been reconnecting for "), problem
    assert f"s ([lease] handover_after of server1: {HANDOVER_AFTER} s), nothing is consumed" in problem, (
        problem
    )
    text = zato("cluster", "status", qs.server_dir("server1"), check=False)  # no LB problem there
    assert text.returncode == 3, text.stdout
    assert f"problem: connector {NAME} on server1 has been reconnecting for " in text.stdout, text.stdout
    # which server's setting that is: before, the text said it only in that problem line
    hand_over = (
        f"Hand-over: after a connector reconnects {HANDOVER_AFTER} s in a row (the holder server1's"
        " [lease] handover_after; each server has its own)"
    )
    assert hand_over in text.stdout.splitlines(), text.stdout
