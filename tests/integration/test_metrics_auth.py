"""/metrics behind server.conf's [metrics] credentials, on real servers: with a password set, a
scrape without them or with wrong ones is a 401 asking for HTTP Basic (said in server.log and
counted as the other rejected credentials are), one with them gets the metrics; a too-short
password stops the start in one line that does not show it; a server bound beyond loopback
with no password says once in its log that its /metrics is open; the dashboard scrapes such
servers with dashboard.conf's [metrics] (what `zato create dashboard` copies), and says what to
set when it has none. Before, /metrics answered everyone and server.conf had no [metrics]."""

from __future__ import annotations

import os
import shutil

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_dashboard import Operator
from tests.support import one_line_error, wait_for, zato

PASSWORD = "metricsauth-scrape-pw-7"  # noqa: S105 - a test's own
METRICS = {"metrics": {"username": "prom", "password": PASSWORD}}
BEYOND = {"host": "0.0.0.0", "announce_host": "127.0.0.1"}  # [main]: every interface


def rejected_scrapes(text: str) -> float:
    """zato_server_rejected_credentials_total{kind="metrics"} of one /metrics answer (0: absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "zato_server_rejected_credentials_total" and s.labels.get("kind") == "metrics":
                return s.value
    return 0.0


def test_with_a_password_a_scrape_needs_the_metrics_credentials(quickstart):
    qs = quickstart(servers=1, lb=False, extra_conf={"main": BEYOND, **METRICS})
    qs.start("server1")
    url = qs.server_url("server1") + "/metrics"
    for auth in (None, ("prom", "wrong-password-1"), ("metrics", PASSWORD), ("prom", PASSWORD + "x")):
        r = requests.get(url, auth=auth, timeout=10)
        assert r.status_code == 401, (auth, r.status_code)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="Zato metrics"'
        assert "zato_server" not in r.text and r.headers["X-Zato-CID"]
    r = requests.get(url, auth=("prom", PASSWORD), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert "zato_redis_up 1.0" in r.text
    assert rejected_scrapes(r.text) == 4  # each counted, as the other rejected credentials
    log = qs.server_logs()
    assert "/metrics: rejected credentials for user '(none)' from 127.0.0.1" in log
    assert "/metrics: rejected credentials for user 'prom' from 127.0.0.1" in log
    assert PASSWORD not in qs.server_logs("*.log")
    assert "/metrics of server" not in log  # bound to every interface, but with a password: nothing to say
    # what `zato info --urls` (and `make run`) says of the server: where the credentials are
    urls = zato("info", qs.server_dir("server1"), "--urls").stdout
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    assert f"/metrics (user prom, password: [metrics] in {conf})" in urls and PASSWORD not in urls


def test_a_too_short_metrics_password_stops_the_start_without_showing_it(quickstart):
    qs = quickstart(servers=1, lb=False, extra_conf={"metrics": {"password": "shrt-7x"}})
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    proc = zato("start", qs.server_dir("server1"), check=False)
    line = one_line_error(proc, f"{conf}: [metrics] password is shorter than 8 characters")
    assert "shrt-7x" not in proc.stdout + proc.stderr, line
    assert qs.pid("server1") is None


def test_a_server_bound_beyond_loopback_without_a_password_says_its_metrics_are_open(quickstart):
    qs = quickstart(servers=2, lb=False)
    qs._merge(os.path.join(qs.server_dir("server1"), "config", "server.conf"), "main", BEYOND)
    qs.start()
    port = qs.settings("server1").port

    def log(name: str) -> str:
        with open(os.path.join(qs.server_dir(name), "logs", "server.log")) as f:
            return f.read()

    said = f"/metrics of server server1 is open to anyone who reaches port {port} at any address of this host"
    wait_for(lambda: said in log("server1"), 15, what="the warning in server1's log")
    line = next(x for x in log("server1").splitlines() if said in x)
    assert "WARNING" in line and "set [metrics] password" in line and "basic_auth" in line
    assert log("server1").count("/metrics of server") == 1
    assert requests.get(qs.server_url("server1") + "/metrics", timeout=10).status_code == 200  # as before
    # bound to 127.0.0.1 (server2, as quickstart makes them): nothing to say, and open as before
    assert "/metrics of server" not in log("server2")
    assert requests.get(qs.server_url("server2") + "/metrics", timeout=10).status_code == 200


def test_the_dashboard_scrapes_with_its_metrics_credentials_and_says_when_it_has_none(quickstart):
    qs = quickstart(servers=1, lb=False, extra_conf=METRICS)
    qs.start("server1", "dashboard")  # its dashboard.conf has no [metrics]: it was made before
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    conf = os.path.join(qs.dashboard_dir, "config", "dashboard.conf")
    needs = (
        "server server1: its /metrics needs credentials (its [metrics] password), so its requests/s are "
        f"not shown: set [metrics] username and password in {conf} to the servers'"
    )
    wait_for(lambda: any(needs in e for e in op.state()["errors"]), 20, what="the dashboard saying so")
    assert op.state()["servers"][0]["rps"] is None
    # a dashboard made for the server now (`zato create dashboard`) takes its [metrics]
    zato("stop", qs.dashboard_dir)
    shutil.rmtree(qs.dashboard_dir)
    zato("create", "dashboard", qs.dashboard_dir, "--server", qs.server_dir("server1"),
         "--port", str(qs.dashboard_port))  # fmt: skip
    with open(conf) as f:
        assert f"password = {PASSWORD}" in f.read()
    qs.start("dashboard")
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    wait_for(lambda: op.state()["servers"][0].get("rps") is not None, 20, what="server1's requests/s")
    assert not [e for e in op.state()["errors"] if "/metrics" in e]
