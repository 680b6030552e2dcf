"""A quickstart of 10+ servers through the real CLI: each command, the dashboard and the load
balancer's view list its servers in natural order (server2 before server10), as they are
named. Before, in text order: server1, server10, server2, ..."""

from __future__ import annotations

import re

from tests.integration.test_dashboard import Operator, browser, login, needs_browser, texts  # noqa: F401
from tests.support import cluster_name, wait_for, zato

NAMES = [f"server{i}" for i in range(1, 11)]


def order(text: str, pattern: str) -> list[str]:
    """The server names `text` mentions through `pattern` (one group: the name), in order."""
    return re.findall(pattern, text, re.MULTILINE)


@needs_browser
def test_start_stop_info_status_and_the_dashboard_list_server10_after_server9(quickstart, browser):  # noqa: F811
    qs = quickstart(servers=10, workers=1, cluster=cluster_name("polish-order"))
    info = zato("info", qs.path).stdout
    assert order(info, r"^  name +(server\d+)$") == NAMES, info
    out = zato("start", qs.path, timeout=300).stdout
    assert order(out, r"^server (server\d+) started") == NAMES, out
    status = zato("cluster", "status", qs.path).stdout
    assert order(status, r"^(server\d+) +live") == NAMES, status

    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    assert [s["name"] for s in op.state()["servers"]] == NAMES
    backends = wait_for(
        lambda: len(b := op.state()["lb"]["servers"]) == len(NAMES) and b, 60, what="10 LB backends"
    )
    assert [b["name"] for b in backends] == NAMES  # as `zato info` of the load balancer lists them
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    legend = wait_for(
        lambda: len(t := texts(browser, "#rps-legend span")) == len(NAMES) and t, 30, what="the req/s legend"
    )
    assert [t.split(":")[0] for t in legend] == NAMES, legend

    out = zato("stop", qs.path).stdout
    assert order(out, r"^server (server\d+) stopped") == NAMES, out
